"""Channel layer configuration helpers (channels-redis), and the idle-timeout fix.

channels-redis's ``RedisChannelLayer`` reads a channel with a blocking
``BZPOPMIN`` of 5 s (``brpop_timeout``). redis-py 8 gives every connection a
default ``socket_timeout`` of 5 s, so with hosts that do not set one (the form
in Channels' docs, ``"hosts": [("127.0.0.1", 6379)]``, a URL, a dict without
the key) the client gives up on an idle read just before Redis answers:
``TimeoutError`` every ~5 s, and a message popped at that moment can be lost
(channels_redis issue #422). ``prepare_layer`` gives such hosts
``socket_timeout=None`` (redis-py 7's default) before any connection is made;
``idle_timeout`` tells a benign timeout of the blocking read from a real
failure where the setting cannot be changed (see ``timeout_problems``).
``RedisPubSubChannelLayer`` is not affected: its reader polls with its own
0.1 s timeout.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "cross_process_alias",
    "idle_timeout",
    "prepare_layer",
    "prepare_layers",
    "redis_channel_layer",
    "timeout_problems",
]

logger = logging.getLogger("ravyn_channels")

#: ``RedisChannelLayer``'s blocking read, in seconds (``brpop_timeout``).
BLOCKING_READ = 5.0

#: Prefix of the process channels on ``RedisChannelLayer`` (``ravyn-process.<client>!<id>``).
PROCESS_CHANNEL = "ravyn-process"
#: Connections a ``hosts`` entry's pool may open (redis-py 8 caps a pool at 100 by default and then
#: raises ``MaxConnectionsError`` instead of waiting, so a burst of more than 100 concurrent layer calls
#: in one process -- broadcasts to many rooms at once -- loses messages; redis-py 7 had no cap).
#: Below Redis's own default ``maxclients`` (10,000) for a few processes.
MAX_CONNECTIONS = 2_000

#: Messages a process channel may hold on ``RedisChannelLayer`` before ``group_send`` drops
#: more (the layer's default ``capacity``, 100, is meant for one consumer's channel; a process
#: channel carries every room of its process). Messages still expire after the layer's ``expiry``.
PROCESS_CHANNEL_CAPACITY = 10_000


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

    The host also sets ``max_connections`` (``MAX_CONNECTIONS``): redis-py 8's
    default pool of 100 raises ``MaxConnectionsError`` when more layer calls are
    in flight in one process (a busy chat: many rooms broadcasting at once), and
    the message of that call is lost.
    """
    host: dict[str, Any] = {"address": url, "socket_timeout": None, "max_connections": MAX_CONNECTIONS}
    backend = "channels_redis.pubsub.RedisPubSubChannelLayer" if pubsub else "channels_redis.core.RedisChannelLayer"
    return {"BACKEND": backend, "CONFIG": {"hosts": [host], **config}}


def _is_core_backend(backend: Any) -> bool:
    """True for channels-redis's ``RedisChannelLayer`` (a class or its dotted path), not the pub/sub one."""
    if isinstance(backend, str):
        try:
            from django.utils.module_loading import import_string

            backend = import_string(backend)
        except ImportError:
            return False
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover - channels-redis is a dependency
        return False
    return isinstance(backend, type) and issubclass(backend, RedisChannelLayer)


def _host_timeout(host: Any) -> tuple[bool, Any]:
    """``(set, value)``: whether a ``hosts`` entry sets ``socket_timeout``, and to what."""
    address = host.get("address") if isinstance(host, Mapping) else host if isinstance(host, str) else None
    if isinstance(host, Mapping) and "socket_timeout" in host:
        found: tuple[bool, Any] = (True, host["socket_timeout"])
    else:
        found = (False, None)
    if isinstance(address, str):
        # redis-py lets a URL's query win over keyword arguments.
        query = parse_qs(urlsplit(address).query)
        if "socket_timeout" in query:
            raw = query["socket_timeout"][-1]
            try:
                found = (True, float(raw))
            except ValueError:
                found = (True, raw)
    return found


def timeout_problems(config: Any) -> tuple[list[int], list[tuple[int, Any]]]:
    """For a ``CHANNEL_LAYERS`` entry: ``(hosts to adjust, hosts that cannot be made safe)``.

    Only ``RedisChannelLayer`` has a blocking read. A host without ``socket_timeout``
    is adjusted (``socket_timeout=None``); one that sets a timeout of at most 5 s
    (in a dict or in its URL's query) keeps it, and its idle reads time out.
    """
    if not isinstance(config, Mapping) or not _is_core_backend(config.get("BACKEND", "")):
        return [], []
    hosts = (config.get("CONFIG") or {}).get("hosts") or [None]
    if isinstance(hosts, (str, bytes)):
        return [], []
    adjust: list[int] = []
    unsafe: list[tuple[int, Any]] = []
    for index, host in enumerate(hosts):
        is_set, value = _host_timeout(host)
        if not is_set:
            adjust.append(index)
        elif value is not None and (not isinstance(value, (int, float)) or value <= BLOCKING_READ):
            unsafe.append((index, value))
    return adjust, unsafe


def prepare_layer(layer: Any) -> bool:
    """Give a ``RedisChannelLayer``'s hosts without ``socket_timeout`` the value ``None``, and those
    without ``max_connections`` ``MAX_CONNECTIONS``; True if changed.

    Call it before the layer opens connections (ravyn_channels does, at startup
    and before its process channel first reads); hosts that set a value keep it.
    """
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(layer, RedisChannelLayer):
        return False
    _process_channel_capacity(layer)
    changed = False
    hosts = []
    for host in layer.hosts:
        if not _host_timeout(host)[0]:
            host = {**host, "socket_timeout": None}
            changed = True
        if isinstance(host, Mapping) and "max_connections" not in host:  # (a URL's own query still wins)
            host = {**host, "max_connections": MAX_CONNECTIONS}
            changed = True
        hosts.append(host)
    if changed:
        layer.hosts = hosts
    return changed


def _process_channel_capacity(layer: Any) -> None:
    """Let process channels hold ``PROCESS_CHANNEL_CAPACITY`` messages, unless ``channel_capacity`` says otherwise.

    The capacity is checked by the sender, so every process (servers, workers
    calling ``broadcast_sync``) sets it on its layer.
    """
    sample = f"{PROCESS_CHANNEL}.x!y"
    capacities = layer.channel_capacity
    if not any(pattern.match(sample) for pattern, _ in capacities):
        capacities.append((re.compile(re.escape(PROCESS_CHANNEL) + r"\..*"), PROCESS_CHANNEL_CAPACITY))


async def new_process_channel(layer: Any) -> str:
    """A new channel for this process's hub (on ``RedisChannelLayer``, named for its larger capacity)."""
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover - channels-redis is a dependency
        return str(await layer.new_channel())
    if isinstance(layer, RedisChannelLayer):
        _process_channel_capacity(layer)
        channel: str = await layer.new_channel(prefix=PROCESS_CHANNEL)
        return channel
    return str(await layer.new_channel())


def prepare_layers() -> None:
    """``prepare_layer`` for every ``RedisChannelLayer`` in ``CHANNEL_LAYERS`` (at startup, in ``ready()``)."""
    from channels.layers import get_channel_layer
    from django.conf import settings

    for alias, config in (getattr(settings, "CHANNEL_LAYERS", None) or {}).items():
        if isinstance(config, Mapping) and _is_core_backend(config.get("BACKEND", "")):
            try:
                prepare_layer(get_channel_layer(alias))
            except Exception as exc:  # a broken configuration is the system checks' business
                logger.debug("Could not prepare channel layer %r (%r)", alias, exc)


async def idle_timeout(layer: Any, channel: str, exc: BaseException) -> bool:
    """True if ``exc``, raised by ``layer.receive(channel)``, is the benign timeout of an idle blocking read.

    That is a redis-py ``TimeoutError`` from a ``RedisChannelLayer`` whose Redis
    still answers a ``PING`` at once; anything else is a real failure.
    """
    try:
        from channels_redis.core import RedisChannelLayer
        from redis.exceptions import TimeoutError as RedisTimeout
    except ImportError:  # pragma: no cover
        return False
    if not isinstance(exc, RedisTimeout) or not isinstance(layer, RedisChannelLayer):
        return False
    try:
        index = layer.consistent_hash(layer.non_local_name(channel))
        await asyncio.wait_for(layer.connection(index).ping(), 2.0)
    except Exception:
        return False
    return True


def cross_process_alias(alias: str | None, what: str) -> str:
    """The ``CHANNEL_LAYERS`` alias a management command sends through (``alias`` or the default).

    A command runs in its own process, so it refuses, with a ``CommandError`` saying why,
    a missing layer and the in-memory layer (which lives inside one process): ``what``
    names what could not arrive ("no client could receive the message").
    """
    from django.conf import settings
    from django.core.management.base import CommandError

    from .conf import get_settings

    alias = alias or get_settings().CHANNEL_LAYER
    config = (getattr(settings, "CHANNEL_LAYERS", None) or {}).get(alias)
    if config is None:
        raise CommandError(f"CHANNEL_LAYERS has no {alias!r} layer; configure one (see 'manage.py check').")
    if str(config.get("BACKEND", "")).endswith("InMemoryChannelLayer"):
        raise CommandError(
            f"CHANNEL_LAYERS[{alias!r}] is the in-memory layer, which lives inside one process: this command "
            f"runs in its own process, so {what}. Use channels-redis (ravyn_channels.layers.redis_channel_layer)."
        )
    return alias
