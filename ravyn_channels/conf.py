"""The ``RAVYN_CHANNELS`` setting: one dict, every key optional.

Read lazily and reset on Django's ``setting_changed`` signal, so
``override_settings(RAVYN_CHANNELS={...})`` works in tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = ["DEFAULTS", "Settings", "fragment_limit", "get_settings"]

OverflowPolicy = Literal["close", "backpressure"]


@dataclass(frozen=True)
class Settings:
    """Resolved ``RAVYN_CHANNELS`` values (see the README's "Settings" table)."""

    #: Module names looked up in every installed app (like ``admin.py``).
    AUTODISCOVER: Sequence[str] = ("sockets",)
    #: Client frames queued for a handler that has not read them yet.
    INBOX_SIZE: int = 256
    #: What a full inbox does: ``"close"`` (1013, one WARNING) or ``"backpressure"``.
    INBOX_OVERFLOW: OverflowPolicy = "close"
    #: Largest client message in bytes (UTF-8 length for text); larger closes with 1009.
    MAX_MESSAGE_SIZE: int = 1024 * 1024
    #: Allowed ``Origin`` patterns; ``None`` means ``ALLOWED_HOSTS``.
    ORIGINS: Sequence[str] | None = None
    #: Addresses or networks (``"10.0.0.1"``, ``"10.0.0.0/8"``) of reverse proxies whose
    #: ``X-Forwarded-For`` is believed by ``websocket.client``; empty: the server's ``client``.
    TRUSTED_PROXIES: Sequence[str] = ()
    #: Refuse handshakes that carry no ``Origin`` header (browsers always send one).
    REQUIRE_ORIGIN: bool = False
    #: Seconds a handler may keep running after its client has gone before it is cancelled.
    DISCONNECT_GRACE: float = 1.0
    #: Seconds to wait for the client's close reply after the server closed.
    CLOSE_TIMEOUT: float = 5.0
    #: Channel layer alias used by generated consumers and managers.
    CHANNEL_LAYER: str = "default"
    #: Unsent bytes a client may have queued before it is dropped as not reading
    #: (daphne: Twisted's buffer, checked before each send, so one large message
    #: always goes out; uvicorn: broadcasts waiting in its outbox); ``None`` disables
    #: the check.
    SEND_BUFFER_LIMIT: int | None = 1024 * 1024
    #: Frames one client message may arrive in (under daphne); more closes with 1009.
    #: ``None``: one per 64 bytes of ``MAX_MESSAGE_SIZE``, at least 1024 (16,384 at 1 MiB).
    MAX_MESSAGE_FRAGMENTS: int | None = None
    #: Seconds a client has, under daphne, to send a complete request head (the websocket
    #: upgrade, or an HTTP request) from connecting or from the end of the previous
    #: response on a kept-alive connection; then the TCP connection is closed. ``None``: no limit.
    HANDSHAKE_TIMEOUT: float | None = 5.0
    #: Client messages daphne queues for the application before it stops reading
    #: the socket (TCP backpressure).
    RECEIVE_QUEUE_LIMIT: int = 64
    #: Seconds the event loop may be blocked before a WARNING shows the blocking code;
    #: ``None``: 1.0 when ``DEBUG`` is True, off otherwise; ``0``: off.
    LOOP_BLOCK_WARNING: float | None = None
    #: Let daphne send every RFC close code (1001, 1003, 1007-1014) and 1009 on
    #: oversized frames; when ``False``, those codes are mirrored to 4000 + (code - 1000).
    PATCH_DAPHNE: bool = True
    #: Seconds a token from ``ravyn_channels.auth.issue_token`` stays valid.
    TOKEN_MAX_AGE: float = 300.0
    #: Revoke a user's tokens (``ravyn_channels.auth.revoke_tokens``) when they log out.
    TOKEN_REVOKE_ON_LOGOUT: bool = True
    #: Close the connections authenticated by a token of a user on every process when the
    #: user's tokens are revoked (``revoke_tokens``, logout, password change): 1008 "token revoked".
    CLOSE_ON_TOKEN_REVOKE: bool = True
    #: Close a connection authenticated by a token when the token expires (``TOKEN_MAX_AGE``
    #: after it was issued): 1008 "token expired". ``False``: the token is checked at the handshake only.
    CLOSE_ON_TOKEN_EXPIRY: bool = True
    #: Presence (``ConnectionManager(presence=True)``): seconds within which the
    #: connections of a process that died without closing them (SIGKILL, power
    #: loss, lost network) leave ``count``/``members`` and are announced as left.
    #: Each process heartbeats every TTL/4; members expire 3/4·TTL after the last beat.
    PRESENCE_TTL: float = 30.0
    #: Topic sockets (``ravyn_channels.topics``): seconds without any client frame
    #: (heartbeats included) after which the socket is closed with 4408; ``None`` or 0: never.
    TOPICS_HEARTBEAT_TIMEOUT: float | None = 60.0
    #: Topics one socket may have joined at once; a join beyond it gets an error reply.
    TOPICS_MAX_PER_SOCKET: int = 100

    #: Rooms one connection may be in through one ``ConnectionManager``; one more raises
    #: ``TooManyRooms`` (close 1008 when uncaught); ``None``: no limit.
    MAX_ROOMS_PER_CONNECTION: int | None = 100
    #: Close a user's sockets on every process when their login ends: logout (that
    #: session's sockets), deactivation, password change (see ``ravyn_channels.logouts``).
    CLOSE_ON_LOGOUT: bool = True
    #: Global rate limits (``ravyn_channels.limits``): ``{"HANDSHAKES_PER_IP": "60/min",
    #: "HANDSHAKES_PER_USER": "30/min", "MESSAGES": "20/s burst 40", "ON_MESSAGE_LIMIT":
    #: "close", "CLOSE_CODE": 1008}``; a route's ``rate_limit=`` overrides each key it sets.
    RATE_LIMITS: Mapping[str, Any] | None = None
    #: Count metrics for ``ravyn_channels.metrics`` (needs prometheus-client, the ``metrics`` extra);
    #: ``None``: on when prometheus-client is installed.
    METRICS: bool | None = None


def fragment_limit(settings: Settings) -> int:
    """The frames one message may arrive in: ``MAX_MESSAGE_FRAGMENTS`` or its default."""
    if settings.MAX_MESSAGE_FRAGMENTS is not None:
        return settings.MAX_MESSAGE_FRAGMENTS
    return max(settings.MAX_MESSAGE_SIZE // 64, 1024)


DEFAULTS = Settings()
_KEYS = frozenset(f.name for f in fields(Settings))
_cached: Settings | None = None


def unknown_keys() -> list[str]:
    """Keys of ``RAVYN_CHANNELS`` that ravyn_channels does not know (reported by a check)."""
    return sorted(set(_raw()) - _KEYS)


def _raw() -> dict[str, Any]:
    value = getattr(django_settings, "RAVYN_CHANNELS", None) or {}
    if not isinstance(value, dict):
        raise TypeError(
            f"settings.RAVYN_CHANNELS must be a dict, got {type(value).__name__}. "
            "Write RAVYN_CHANNELS = {'INBOX_SIZE': 256, ...} in your settings."
        )
    return value


def get_settings() -> Settings:
    """Return the current ``RAVYN_CHANNELS`` merged over the defaults."""
    global _cached
    if _cached is None:
        known = {k: v for k, v in _raw().items() if k in _KEYS}
        _cached = Settings(**known)
    return _cached


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting in ("RAVYN_CHANNELS", "ALLOWED_HOSTS", "CHANNEL_LAYERS"):
        _cached = None
