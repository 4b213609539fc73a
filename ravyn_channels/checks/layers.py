"""W002/W003 (which channel layer), W010/W011 (Redis timeouts), E090 (history stores)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from ..conf import get_settings


@register("ravyn_channels")
def check_channel_layer(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002 no channel layer, W003 the in-memory layer while ``DEBUG`` is off."""
    try:
        alias = get_settings().CHANNEL_LAYER
    except TypeError:  # RAVYN_CHANNELS is not a dict: E004 says so
        alias = "default"
    if not isinstance(alias, str):
        alias = "default"
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    config = layers.get(alias)
    if config is None:
        return [
            Warning(
                f"CHANNEL_LAYERS has no {alias!r} layer: ConnectionManager rooms and "
                "'manage.py ws_send' will fail (handlers without them work).",
                hint="Add CHANNEL_LAYERS = {'default': ravyn_channels.layers.redis_channel_layer(REDIS_URL)}, "
                "or {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}} for one process.",
                id="ravyn_channels.W002",
            )
        ]
    backend = str(config.get("BACKEND", "")) if isinstance(config, dict) else ""
    if backend.endswith("InMemoryChannelLayer") and not settings.DEBUG:
        return [
            Warning(
                f"CHANNEL_LAYERS[{alias!r}] is the in-memory layer while DEBUG is False: broadcasts reach "
                "only the clients of the process that sends them, and 'manage.py ws_send' reaches none.",
                hint="Use channels-redis in production: CHANNEL_LAYERS = "
                "{'default': ravyn_channels.layers.redis_channel_layer(REDIS_URL)}. "
                "Ignore this for a single-process deployment (SILENCED_SYSTEM_CHECKS).",
                id="ravyn_channels.W003",
            )
        ]
    return []


_SAFE_HOSTS = (
    "{'BACKEND': 'channels_redis.core.RedisChannelLayer', 'CONFIG': {'hosts': "
    "[{'address': 'redis://127.0.0.1:6379/0', 'socket_timeout': None}]}} "
    "(what ravyn_channels.layers.redis_channel_layer(url, pubsub=False) writes)"
)


@register("ravyn_channels")
def check_layer_timeouts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W010 ``RedisChannelLayer`` hosts we adjust, W011 hosts whose timeout cuts the layer's blocking read."""
    from ..layers import timeout_problems

    messages: list[CheckMessage] = []
    for alias, config in (getattr(settings, "CHANNEL_LAYERS", None) or {}).items():
        adjust, unsafe = timeout_problems(config)
        if adjust:
            messages.append(
                Warning(
                    f"CHANNEL_LAYERS[{alias!r}] is a RedisChannelLayer whose hosts {adjust} leave socket_timeout to "
                    "redis-py, whose default since redis-py 8 (5 s) cuts the layer's 5 s blocking read: every idle "
                    "receive would fail and plain consumers would be closed with 1011. ravyn_channels sets "
                    "socket_timeout=None on these hosts when the process starts.",
                    hint=f"Say it in your settings to silence this: give each host as a dict with "
                    f"'socket_timeout': None, e.g. {_SAFE_HOSTS}.",
                    id="ravyn_channels.W010",
                )
            )
        for index, value in unsafe:
            messages.append(
                Warning(
                    f"CHANNEL_LAYERS[{alias!r}] host {index} sets socket_timeout={value!r}, not more than the "
                    "RedisChannelLayer's 5 s blocking read: idle reads time out every few seconds (a message popped "
                    "at that moment can be lost, and plain consumers are closed with 1011). ravyn_channels keeps "
                    "your value; its own reader treats these timeouts as benign.",
                    hint=f"Use 'socket_timeout': None (TCP keepalive still detects dead connections), in the host "
                    f"dict and not in the URL's query string, e.g. {_SAFE_HOSTS}.",
                    id="ravyn_channels.W011",
                )
            )
    return messages


_HISTORY_LAYERS = (
    "channels.layers.InMemoryChannelLayer",
    "channels_redis.core.RedisChannelLayer",
    "channels_redis.pubsub.RedisPubSubChannelLayer",
)


@register("ravyn_channels")
def check_history_layers(
    app_configs: Any = None, managers: Iterable[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """E090 a manager with ``history=`` whose channel layer cannot hold a history store."""
    if managers is None:
        from ..manager import _managers

        managers = list(_managers.values())
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    messages: list[CheckMessage] = []
    for manager in managers:
        if getattr(manager, "_history", None) is None:
            continue
        try:
            alias = manager._layer_alias or get_settings().CHANNEL_LAYER
        except TypeError:  # E004 says so
            continue
        config = layers.get(alias)
        backend = str(config.get("BACKEND", "")) if isinstance(config, dict) else ""
        if config is not None and backend not in _HISTORY_LAYERS:
            messages.append(
                Error(
                    f"ConnectionManager {manager.name!r} keeps history (history=...) but CHANNEL_LAYERS[{alias!r}] "
                    f"is {backend or 'unknown'!r}: history lives in the layer's Redis (channels-redis) or in "
                    "memory (InMemoryChannelLayer), so its broadcasts would fail.",
                    hint="Use CHANNEL_LAYERS = {'default': ravyn_channels.layers.redis_channel_layer(REDIS_URL)} "
                    "(or the in-memory layer for one process), or create the manager without history=.",
                    id="ravyn_channels.E090",
                )
            )
    return messages
