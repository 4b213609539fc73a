"""Limits: rate limits (handshakes per client IP and per user, messages per connection; token
buckets) and the rooms one connection may join (``TooManyRooms``).

A rate is ``"<count>/<period>"`` with an optional burst: ``"20/s"``, ``"100/10s"``,
``"60/min burst 120"`` (periods ``s``, ``min``, ``h``, optionally with a number:
``10s``, ``5min``). The bucket holds ``burst`` tokens (default: ``count``) and
refills at ``count/period`` per second; each handshake or message takes one.

Handshake buckets are shared by every process in Redis when the channel layer is
channels-redis (one small Lua script per handshake, keys under the layer's
prefix, expiring once full), in memory otherwise; if Redis fails they fall back
to this process's memory. Message buckets belong to one connection, so they live
in its consumer (a few bytes, no I/O).

Over the limit: a handshake is refused (HTTP 403); a message closes the
connection with ``close_code`` (1008 by default, or 1013), or with
``on_message_limit="drop"`` is discarded. One WARNING per limited client and
limit per window (the rate's period), never one per message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from channels.layers import get_channel_layer

from . import status
from .conf import get_settings
from .proxies import client_address
from .safetext import escape
from .websocket import WebSocketException

__all__ = ["Rate", "RateLimit", "TooManyRooms", "effective_limit", "parse_rate"]

logger = logging.getLogger("ravyn_channels")

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*(?:\.\d+)?)\s*([a-z]+)\s*(?:burst\s+(\d+))?\s*$")
_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}


@dataclass(frozen=True)
class Rate:
    """``count`` events per ``per`` seconds, with bursts up to ``burst`` (default ``count``)."""

    count: int
    per: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"Rate count must be a positive int, got {self.count!r}.")
        if not isinstance(self.per, (int, float)) or not self.per > 0:
            raise ValueError(f"Rate period must be a positive number of seconds, got {self.per!r}.")
        if self.burst is not None and (not isinstance(self.burst, int) or self.burst < 1):
            raise ValueError(f"Rate burst must be a positive int, got {self.burst!r}.")

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else self.count

    @property
    def refill(self) -> float:
        """Tokens added per second."""
        return self.count / self.per

    def __str__(self) -> str:
        burst = f" burst {self.burst}" if self.burst is not None else ""
        return f"{self.count}/{self.per:g}s{burst}"


def parse_rate(value: str | Rate | None, where: str = "rate") -> Rate | None:
    """A ``Rate`` from ``"20/s"``, ``"100/10s"``, ``"60/min burst 120"`` (or a ``Rate``; ``None`` stays ``None``)."""
    if value is None or isinstance(value, Rate):
        return value
    if isinstance(value, str):
        match = _RATE.match(value.lower())
        if match is not None and match.group(3) in _UNITS:
            count, number, unit, burst = match.groups()
            try:
                return Rate(int(count), float(number or 1) * _UNITS[unit], int(burst) if burst else None)
            except ValueError as exc:
                raise ValueError(f"{where}={value!r}: {exc}") from None
    raise ValueError(
        f"{where}={value!r} is not a rate: write '<count>/<period>' with an optional burst, "
        "e.g. '20/s', '100/10s', '60/min burst 120' (periods: s, min, h)."
    )


@dataclass(frozen=True)
class RateLimit:
    """Rate limits of a route (``@websocket(path, rate_limit=RateLimit(...))``); ``None`` keeps the global value.

    ``handshakes_per_ip`` and ``handshakes_per_user`` count handshakes (refused
    with HTTP 403 over the limit) per client address (``websocket.client``) and
    per logged-in user; ``messages`` counts client messages per connection.
    ``on_message_limit``: ``"close"`` (with ``close_code``: 1008, or 1013 for
    "try again later") or ``"drop"`` (the message is discarded).
    """

    handshakes_per_ip: str | Rate | None = None
    handshakes_per_user: str | Rate | None = None
    messages: str | Rate | None = None
    on_message_limit: Literal["close", "drop"] | None = None
    close_code: int | None = None

    def __post_init__(self) -> None:
        for name in ("handshakes_per_ip", "handshakes_per_user", "messages"):
            object.__setattr__(self, name, parse_rate(getattr(self, name), name))
        if self.on_message_limit not in (None, "close", "drop"):
            raise ValueError(f"on_message_limit={self.on_message_limit!r}: use 'close' or 'drop'.")
        if self.close_code is not None and self.close_code not in (
            status.WS_1008_POLICY_VIOLATION,
            status.WS_1013_TRY_AGAIN_LATER,
        ) and not (isinstance(self.close_code, int) and 4000 <= self.close_code <= 4999):
            raise ValueError(f"close_code={self.close_code!r}: use 1008, 1013 or an application code 4000-4999.")

    def rate(self, name: str) -> Rate | None:
        value = getattr(self, name)
        return value if isinstance(value, Rate) else None


_SETTING_KEYS = {
    "HANDSHAKES_PER_IP": "handshakes_per_ip",
    "HANDSHAKES_PER_USER": "handshakes_per_user",
    "MESSAGES": "messages",
    "ON_MESSAGE_LIMIT": "on_message_limit",
    "CLOSE_CODE": "close_code",
}


def global_limit(value: Mapping[str, Any] | None = None) -> RateLimit:
    """``RAVYN_CHANNELS["RATE_LIMITS"]`` as a ``RateLimit`` (raises ``ValueError`` naming a bad key or value)."""
    value = (get_settings().RATE_LIMITS or {}) if value is None else value
    if not isinstance(value, Mapping):
        raise ValueError(f"RATE_LIMITS must be a dict like {{'MESSAGES': '20/s'}}, got {type(value).__name__}.")
    unknown = sorted(set(value) - set(_SETTING_KEYS))
    if unknown:
        raise ValueError(f"RATE_LIMITS has unknown keys {unknown}; known: {sorted(_SETTING_KEYS)}.")
    return RateLimit(**{_SETTING_KEYS[k]: v for k, v in value.items()})


_cache: tuple[object, RateLimit] | None = None


def _global() -> RateLimit:
    """``global_limit()`` for the current settings, parsed once."""
    global _cache
    current = get_settings()
    if _cache is None or _cache[0] is not current:
        _cache = (current, global_limit())
    return _cache[1]


def effective_limit(route_limit: RateLimit | None) -> tuple[RateLimit, set[str]]:
    """The route's limits over the global ones, and the names the route set itself."""
    base = _global()
    if route_limit is None:
        return base, set()
    own = {f.name for f in fields(RateLimit) if getattr(route_limit, f.name) is not None}
    return replace(base, **{name: getattr(route_limit, name) for name in own}), own


# -- counting ---------------------------------------------------------------------------------


class MemoryBuckets:
    """Token buckets in this process; entries that refilled completely are pruned."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, rate: Rate) -> bool:
        now = time.monotonic()
        tokens, stamp = self._buckets.get(key, (float(rate.capacity), now))
        tokens = min(float(rate.capacity), tokens + (now - stamp) * rate.refill)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > 10_000:
            self._prune(now, rate)
        return allowed

    def _prune(self, now: float, rate: Rate) -> None:
        full = rate.capacity / rate.refill
        for key, (_, stamp) in list(self._buckets.items()):
            if now - stamp >= full:
                del self._buckets[key]


_TAKE = """
local now = redis.call('TIME')
local t = tonumber(now[1]) + tonumber(now[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens, stamp = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens = burst; stamp = t end
tokens = math.min(burst, tokens + math.max(0, t - stamp) * rate)
local allowed = 0
if tokens >= 1 then tokens = tokens - 1; allowed = 1 end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'stamp', tostring(t))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return allowed
"""


class RedisBuckets:
    """Token buckets shared by every process, in the channel layer's first Redis host."""

    def __init__(self, host: Mapping[str, Any], prefix: str):
        from channels_redis.utils import create_pool
        from redis import asyncio as aioredis

        self.prefix = f"{prefix}:ratelimit:"
        self._client = aioredis.Redis(connection_pool=create_pool(dict(host)))
        self._take = self._client.register_script(_TAKE)

    async def take(self, key: str, rate: Rate) -> bool:
        return bool(await self._take(keys=[self.prefix + key], args=[repr(rate.refill), rate.capacity]))


_memory = MemoryBuckets()
_redis: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, RedisBuckets | None] = weakref.WeakKeyDictionary()
_last_failure = -60.0


def _shared() -> RedisBuckets | None:
    """Redis buckets for this event loop when the channel layer is channels-redis, else ``None``."""
    loop = asyncio.get_running_loop()
    if loop in _redis:
        return _redis[loop]
    buckets = None
    layer = get_channel_layer(get_settings().CHANNEL_LAYER)
    try:
        from channels_redis.core import RedisChannelLayer
    except ImportError:  # pragma: no cover - channels-redis is optional
        RedisChannelLayer = None
    if RedisChannelLayer is not None and isinstance(layer, RedisChannelLayer) and layer.hosts:
        buckets = RedisBuckets(layer.hosts[0], str(layer.prefix))
    _redis[loop] = buckets
    return buckets


async def take(key: str, rate: Rate) -> bool:
    """Take one token from the bucket ``key``: in Redis when shared, in memory otherwise or if Redis fails."""
    global _last_failure
    shared = _shared()
    if shared is not None:
        try:
            return await shared.take(key, rate)
        except Exception as exc:
            now = time.monotonic()
            level = logging.DEBUG if now - _last_failure < 30 else logging.ERROR
            _last_failure = now
            logger.log(level, "Rate limits counted in this process only: Redis failed (%r).", exc)
    return _memory.take(key, rate)


class _Warnings:
    """One WARNING per client and limit per window."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def should_warn(self, key: str, window: float) -> bool:
        now = time.monotonic()
        if self._until.get(key, 0.0) > now:
            return False
        if len(self._until) > 10_000:
            self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[key] = now + window
        return True


warnings = _Warnings()


def _client(scope: Mapping[str, Any]) -> str:
    client = client_address(scope)
    return client[0] if client else "?"


async def handshake_refusal(scope: Mapping[str, Any], route_limit: RateLimit | None, path: str) -> str | None:
    """Why a handshake is over its limits (taking one token from each bucket), or ``None``."""
    limit, own = effective_limit(route_limit)
    per_ip, per_user = limit.rate("handshakes_per_ip"), limit.rate("handshakes_per_user")
    if per_ip is None and per_user is None:
        return None
    checks = []
    if per_ip is not None:
        client = _client(scope)
        scope_key = f"r:{path}:" if "handshakes_per_ip" in own else ""
        checks.append((f"{scope_key}ip:{client}", per_ip, "handshakes_per_ip", client))
    user = scope.get("user")
    if per_user is not None and user is not None and getattr(user, "is_authenticated", False):
        scope_key = f"r:{path}:" if "handshakes_per_user" in own else ""
        who = f"user {getattr(user, 'pk', '')}"
        checks.append((f"{scope_key}user:{getattr(user, 'pk', '')}", per_user, "handshakes_per_user", who))
    for key, rate, name, who in checks:
        if not await take(key, rate):
            if warnings.should_warn(f"h:{key}", rate.per):
                logger.warning(
                    "Refusing websocket handshakes to %s from %s: over %s = %s (one warning per client per %gs)",
                    escape(path), escape(who), name, rate, rate.per,
                )
            return f"over {name} = {rate}"
    return None


class MessageLimiter:
    """One connection's message bucket (no I/O)."""

    __slots__ = ("_stamp", "_tokens", "client", "close_code", "drop", "path", "rate")

    def __init__(self, rate: Rate, drop: bool, close_code: int, client: str, path: str):
        self.rate = rate
        self.drop = drop
        self.close_code = close_code
        self.client = client
        self.path = path
        self._tokens = float(rate.capacity)
        self._stamp = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        rate = self.rate
        tokens = min(float(rate.capacity), self._tokens + (now - self._stamp) * rate.refill)
        self._stamp = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        if warnings.should_warn(f"m:{self.path}:{self.client}", rate.per):
            action = "dropping messages" if self.drop else f"closing with {self.close_code}"
            logger.warning(
                "Websocket %s from %s is over messages = %s: %s (one warning per client per %gs)",
                escape(self.path), escape(self.client), rate, action, rate.per,
            )
        return False


def message_limiter(scope: Mapping[str, Any], route_limit: RateLimit | None, path: str) -> MessageLimiter | None:
    """The message limiter of a new connection, or ``None`` when messages are not limited."""
    limit, _ = effective_limit(route_limit)
    rate = limit.rate("messages")
    if rate is None:
        return None
    code = limit.close_code or status.WS_1008_POLICY_VIOLATION
    return MessageLimiter(rate, limit.on_message_limit == "drop", code, _client(scope), path)


class TooManyRooms(WebSocketException):
    """``ConnectionManager.connect`` refused a room: the connection is in ``limit`` rooms of that manager already.

    A ``WebSocketException`` with code 1008: catch it to answer the client and
    keep the connection; uncaught, it closes the connection with 1008 and one
    INFO line. The limit is ``RAVYN_CHANNELS["MAX_ROOMS_PER_CONNECTION"]``.
    """

    def __init__(self, room: str, limit: int):
        self.room = room
        self.limit = limit
        super().__init__(status.WS_1008_POLICY_VIOLATION, f"too many rooms (limit {limit})")
