"""Token authentication for clients that cannot send cookies or headers.

A browser's ``new WebSocket(url, protocols)`` cannot set an ``Authorization``
header; what it can send is a list of subprotocols, and a query string. So a
token travels either way:

- ``new WebSocket(url, ["bearer", token])``: the token is the entry after
  ``"bearer"``; the handler accepts with ``subprotocol="bearer"`` (a server
  must echo one of the offered entries, and echoing the token itself would
  copy it into the response). Tokens must be made of RFC 7230 token
  characters (letters, digits, ``.-_~!#$&'*+^`|``); ours are.
- ``ws://host/path?token=...``: simpler, but query strings end up in access
  logs and proxies; prefer the subprotocol.

``issue_token(user)`` signs a short-lived token with Django's ``SECRET_KEY``
(no table needed); ``token_user`` is a dependency that checks it and makes
its user the connection's user::

    @websocket("/feed", permissions=[IsAuthenticated])
    async def feed(websocket: WebSocket, user=Inject(token_user)) -> None:
        await websocket.accept(subprotocol=token_subprotocol(websocket))
"""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.utils.crypto import constant_time_compare

from .params import Query
from .websocket import WebSocket, WebSocketException

__all__ = ["SCHEME", "bearer_token", "issue_token", "token_subprotocol", "token_user", "user_from_token"]

#: The subprotocol entry that announces a token: ``["bearer", token]``.
SCHEME = "bearer"
_SALT = "ravyn_channels.auth.token"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT, sep=".")


def bearer_token(websocket: WebSocket) -> str | None:
    """The token offered as ``["bearer", token]`` in ``Sec-WebSocket-Protocol``, or ``None``."""
    offered = websocket.subprotocols
    for index, entry in enumerate(offered[:-1]):
        if entry.lower() == SCHEME:
            return offered[index + 1]
    return None


def token_subprotocol(websocket: WebSocket) -> str | None:
    """The subprotocol to accept with: ``"bearer"`` if the client offered it, else ``None``."""
    return next((p for p in websocket.subprotocols if p.lower() == SCHEME), None)


def issue_token(user: Any) -> str:
    """A signed token for ``user`` (e.g. in a view, for the page's script to connect with).

    It names the user and is void once the user's password changes; it
    expires after ``RAVYN_CHANNELS["TOKEN_MAX_AGE"]`` seconds (checked by ``user_from_token``).
    """
    if not getattr(user, "is_authenticated", False):
        raise ValueError("issue_token() needs a logged-in user, not an anonymous one.")
    return _signer().sign_object([str(user.pk), user.get_session_auth_hash()])


async def user_from_token(token: str, *, max_age: float | None = None) -> Any | None:
    """The active user a token from ``issue_token`` names, or ``None`` (bad, expired or stale)."""
    from django.contrib.auth import get_user_model

    from .conf import get_settings

    age = get_settings().TOKEN_MAX_AGE if max_age is None else max_age
    try:
        pk, auth_hash = _signer().unsign_object(token, max_age=age)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    model = get_user_model()
    try:
        user = await model._default_manager.aget(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        return None
    if not getattr(user, "is_active", True) or not constant_time_compare(user.get_session_auth_hash(), auth_hash):
        return None
    return user


async def token_user(websocket: WebSocket, token: str | None = Query(None)) -> Any:
    """Dependency: the user of the token offered as a subprotocol (or as ``?token=``).

    Refuses the handshake when the token is missing or invalid; otherwise
    sets ``websocket.user`` (what the route's permissions see) and returns it.
    """
    raw = bearer_token(websocket) or token
    if not raw:
        raise WebSocketException(reason="no token: offer ['bearer', token] as subprotocols or send ?token=")
    user = await user_from_token(raw)
    if user is None:
        raise WebSocketException(reason="invalid or expired token")
    websocket.scope["user"] = user  # type: ignore[index]
    return user
