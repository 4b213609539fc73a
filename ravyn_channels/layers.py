"""Channel layer configuration helpers (channels-redis)."""

from __future__ import annotations

from typing import Any

__all__ = ["redis_channel_layer"]


def redis_channel_layer(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    pubsub: bool = False,
    **config: Any,
) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry for channels-redis that keeps idle connections open.

    ``config`` adds keys to the layer's ``CONFIG`` (``prefix``, ``capacity``,
    ``group_expiry``, ...).
    """
    host: dict[str, Any] = {"address": url}
    backend = (
        "channels_redis.pubsub.RedisPubSubChannelLayer" if pubsub else "channels_redis.core.RedisChannelLayer"
    )
    return {"BACKEND": backend, "CONFIG": {"hosts": [host], **config}}
