"""Channel layer configuration helpers (channels-redis)."""

from __future__ import annotations

from typing import Any

__all__ = ["redis_channel_layer"]


def redis_channel_layer(
    url: str = "redis://127.0.0.1:6379/0",
    *,
    pubsub: bool = True,
    **config: Any,
) -> dict[str, Any]:
    """A ``CHANNEL_LAYERS`` entry for channels-redis that keeps idle connections open.

    With redis-py 8, channels-redis's plain ``hosts: [("127.0.0.1", 6379)]`` fails
    every ~5 s while idle: redis-py's new default ``socket_timeout`` (5 s) equals
    the layer's blocking pop (``BZPOPMIN`` with a 5 s timeout), so the read times
    out first (channels_redis issue #422). This host entry sets
    ``socket_timeout=None``: the blocking pop returns on its own after 5 s, the
    connect timeout (5 s) still makes a down Redis fail fast, and TCP keepalive
    (on by default in redis-py 8) still catches dead connections. A finite value
    such as 10 s is not a fix on Python 3.11: every command then runs under
    ``asyncio.wait_for``, which can swallow a cancellation (CPython gh-86296) and
    hang a crashed handler with no close frame.

    ``pubsub=True`` (the default) selects ``RedisPubSubChannelLayer``, which
    suits ``ConnectionManager`` best: a broadcast is one PUBLISH per room, no
    per-channel capacity can drop it, and a process's group memberships are its
    own subscriptions, so they vanish with the process instead of lingering for
    ``group_expiry`` (24 h) after a crash. ``pubsub=False`` selects
    ``RedisChannelLayer`` (persistent per-channel queues, needed for
    ``runworker``-style named channels). ``config`` adds keys to the layer's
    ``CONFIG`` (``prefix``, ``capacity``, ``group_expiry``, ...).
    """
    host: dict[str, Any] = {"address": url, "socket_timeout": None}
    backend = (
        "channels_redis.pubsub.RedisPubSubChannelLayer" if pubsub else "channels_redis.core.RedisChannelLayer"
    )
    return {"BACKEND": backend, "CONFIG": {"hosts": [host], **config}}
