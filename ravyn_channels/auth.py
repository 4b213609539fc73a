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
(no table needed to check it); ``token_user`` is a dependency that checks it
and makes its user the connection's user::

    @websocket("/feed", permissions=[IsAuthenticated])
    async def feed(websocket: WebSocket, user=Inject(token_user)) -> None:
        await websocket.accept(subprotocol=token_subprotocol(websocket))

The token model (README "Token authentication"):

- **Payload, readable by anyone who holds the token** (it is signed, not
  encrypted): the user's ``pk``, the time it was issued, the user's token
  generation, and a 16-hex digest derived from the user's password hash
  (an HMAC keyed with ``SECRET_KEY``; it reveals nothing about the password
  but changes when the password does). No username, no session key.
- **Lifetime**: ``RAVYN_CHANNELS["TOKEN_MAX_AGE"]`` seconds (300) from issue
  (whole seconds), checked at the handshake; a connection it opened is closed
  when it expires (1008, ``"token expired"``; ``CLOSE_ON_TOKEN_EXPIRY``).
- **Void at the next handshake** when the password changes, the user is
  deactivated or deleted, or the user's tokens are revoked.
- **Revocation**: ``revoke_tokens(user)`` moves the user's generation on (one
  row in ``ravyn_channels_tokengeneration``: run ``migrate``), so every token
  issued before is refused, and sends ``tokens_revoked``. Logging out revokes
  (``user_logged_out``; ``TOKEN_REVOKE_ON_LOGOUT``); a password saved with
  ``set_password`` sends ``tokens_revoked`` too.
- **Open connections**: the receiver of ``tokens_revoked`` installed here
  closes the connections authenticated by a token of that user on every
  process (1008, reason ``"token revoked"``; ``CLOSE_ON_TOKEN_REVOKE``), with
  one ``ravyn.close`` event of ``ravyn_channels.ops`` marked ``token``, sent once
  the transaction commits. The user's sockets authenticated by a session stay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asgiref.sync import sync_to_async
from django.core import signing
from django.db import DatabaseError, IntegrityError
from django.db.models import F
from django.dispatch import Signal
from django.utils.crypto import constant_time_compare, salted_hmac

from . import ops, status
from .params import Query
from .safetext import escape
from .websocket import WebSocket, WebSocketException

__all__ = [
    "EXPIRED_REASON",
    "REVOKED_REASON",
    "SCHEME",
    "TOKEN_CLOSE_CODE",
    "aissue_token",
    "arevoke_tokens",
    "bearer_token",
    "close_token_sockets",
    "issue_token",
    "revoke_tokens",
    "set_token_user",
    "token_subprotocol",
    "token_user",
    "tokens_revoked",
    "user_from_token",
]

logger = logging.getLogger("ravyn_channels")

#: The subprotocol entry that announces a token: ``["bearer", token]``.
SCHEME = "bearer"
#: The close code of a connection whose token was revoked or expired.
TOKEN_CLOSE_CODE = status.WS_1008_POLICY_VIOLATION
#: The close reason of a connection whose token was revoked (code 1008).
REVOKED_REASON = "token revoked"
#: The close reason of a connection whose token expired (code 1008).
EXPIRED_REASON = "token expired"
_SALT = "ravyn_channels.auth.token"

#: Sent with ``user_key=str(user.pk)`` when a user's tokens are revoked (``revoke_tokens``,
#: logout) or their password changed. The receiver installed by ravyn_channels closes the
#: connections authenticated by a token of that user on every process (``CLOSE_ON_TOKEN_REVOKE``).
tokens_revoked = Signal()


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT, sep=".")


def _key(user: Any) -> str:
    pk = getattr(user, "pk", user)
    if pk is None or isinstance(pk, bool):
        raise ValueError(f"Tokens belong to saved, logged-in users; got {user!r}.")
    return str(pk)


def _password_digest(user: Any) -> str:
    """Changes with the password; reveals nothing of the session auth hash it is derived from."""
    return salted_hmac(_SALT + ".password", user.get_session_auth_hash(), algorithm="sha256").hexdigest()[:16]


def _issued_at(token: str) -> float:
    """The Unix time (whole seconds) a token from ``issue_token`` was signed: ``payload.time.signature``."""
    return float(signing.b62_decode(token.rsplit(".", 2)[-2]))


def _generation(key: str) -> int:
    from .models import TokenGeneration

    found = TokenGeneration.objects.filter(pk=key).values_list("generation", flat=True).first()
    return int(found or 0)


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

    It names the user and is void once the user's password changes or their
    tokens are revoked (``revoke_tokens``, logout); it expires after
    ``RAVYN_CHANNELS["TOKEN_MAX_AGE"]`` seconds (checked by ``user_from_token``).
    Reads the database (the user's generation): from async code use ``aissue_token``.
    """
    if not getattr(user, "is_authenticated", False):
        raise ValueError("issue_token() needs a logged-in user, not an anonymous one.")
    key = _key(user)
    return _signer().sign_object([key, _password_digest(user), _generation(key)])


async def aissue_token(user: Any) -> str:
    """``issue_token`` for async code."""
    return await sync_to_async(issue_token)(user)


async def user_from_token(token: str, *, max_age: float | None = None) -> Any | None:
    """The active user a token from ``issue_token`` names, or ``None`` (bad, expired, stale or revoked)."""
    from django.contrib.auth import get_user_model

    from .conf import get_settings

    age = get_settings().TOKEN_MAX_AGE if max_age is None else max_age
    try:
        pk, digest, generation = _signer().unsign_object(token, max_age=age)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    model = get_user_model()
    try:
        user = await model._default_manager.aget(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        return None
    if not getattr(user, "is_active", True) or not constant_time_compare(_password_digest(user), str(digest)):
        return None
    if generation != await sync_to_async(_generation)(str(pk)):
        return None
    return user


def revoke_tokens(user: Any) -> None:
    """Void every token issued to ``user`` (a user or its ``pk``) so far, and send ``tokens_revoked``.

    New handshakes with those tokens are refused on every process (the
    generation is in the database); open connections authenticated by a token
    of the user close with 1008 ``"token revoked"`` on every process once the
    transaction commits (``CLOSE_ON_TOKEN_REVOKE``). Tokens issued afterwards work.
    """
    from .models import TokenGeneration

    key = _key(user)
    if not TokenGeneration.objects.filter(pk=key).update(generation=F("generation") + 1):
        try:
            TokenGeneration.objects.create(user_key=key, generation=1)
        except IntegrityError:  # created meanwhile by another revocation
            TokenGeneration.objects.filter(pk=key).update(generation=F("generation") + 1)
    tokens_revoked.send(sender=TokenGeneration, user_key=key)


async def arevoke_tokens(user: Any) -> None:
    """``revoke_tokens`` for async code."""
    await sync_to_async(revoke_tokens)(user)


# -- open connections authenticated by a token ------------------------------------------------

_expiring: set[asyncio.Task[None]] = set()


def close_token_sockets(user: Any, code: int = TOKEN_CLOSE_CODE, reason: str = REVOKED_REASON) -> None:
    """Close every connection authenticated by a token of ``user`` (a user or its ``pk``), on every process.

    What the receiver of ``tokens_revoked`` calls (through the channel layer, as
    ``ops.disconnect_user`` does); call it yourself when your own tokens (a JWT
    deny-list) end. Connections of that user authenticated otherwise (a session
    cookie) stay open. Sync: from async code use ``ops.send_event(ops.user_event(..., token=True))``.
    """
    ops.send_event_sync(ops.user_event(_key(user), code, reason, token=True))


def set_token_user(websocket: WebSocket, user: Any, *, expires_at: float | None = None) -> None:
    """Make ``user`` the connection's user, authenticated by a token (for your own token dependencies).

    ``websocket.user`` becomes ``user``; the connection is closed by a revocation
    of the user's tokens (``CLOSE_ON_TOKEN_REVOKE``) and, when ``expires_at`` (a Unix
    time) is given, at that time (``CLOSE_ON_TOKEN_EXPIRY``), with 1008 and
    ``"token revoked"`` / ``"token expired"``. Call it from a dependency, as
    ``token_user`` does: the connection is registered for closing with the user
    it has when the handler starts.
    """
    websocket.scope["user"] = user  # type: ignore[index]
    websocket.scope[ops.TOKEN_SCOPE_KEY] = expires_at  # type: ignore[index]


def start_expiry_timer(websocket: WebSocket) -> None:
    """At accept (called by the consumer): close the connection when its token expires.

    One ``call_later`` per token connection, cancelled when the connection
    ends; nothing for connections without a token or with ``CLOSE_ON_TOKEN_EXPIRY`` off.
    """
    from .conf import get_settings

    expires_at = websocket.scope.get(ops.TOKEN_SCOPE_KEY)
    consumer = websocket.consumer
    if not isinstance(expires_at, (int, float)) or consumer is None or not get_settings().CLOSE_ON_TOKEN_EXPIRY:
        return
    handle = asyncio.get_running_loop().call_later(max(0.0, expires_at - time.time()), _expire, websocket)

    async def cancel() -> None:
        handle.cancel()

    consumer.on_close(cancel)


def _expire(websocket: WebSocket) -> None:
    task = asyncio.ensure_future(_close_expired(websocket))
    _expiring.add(task)
    task.add_done_callback(_expiring.discard)


async def _close_expired(websocket: WebSocket) -> None:
    if await ops.close_socket(websocket, TOKEN_CLOSE_CODE, EXPIRED_REASON):
        logger.info(
            "Closed websocket %s (%s) with %d: %s",
            escape(websocket.scope.get("path", "?")),
            websocket.handler_name,
            TOKEN_CLOSE_CODE,
            EXPIRED_REASON,
        )


def _on_revoked(sender: Any, user_key: str, **kwargs: Any) -> None:
    from django.db import DEFAULT_DB_ALIAS, router, transaction
    from django.db.models import Model

    from .conf import get_settings

    if not get_settings().CLOSE_ON_TOKEN_REVOKE:
        return
    event = ops.user_event(user_key, TOKEN_CLOSE_CODE, REVOKED_REASON, token=True)
    using = router.db_for_write(sender) if isinstance(sender, type) and issubclass(sender, Model) else None
    # Once the revocation (or the new password) is committed: a client that reconnects at once
    # with the old token is refused.
    transaction.on_commit(lambda: ops.send_event_logged(event), using=using or DEFAULT_DB_ALIAS)


def _on_logout(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    from .conf import get_settings

    if user is None or getattr(user, "pk", None) is None or not get_settings().TOKEN_REVOKE_ON_LOGOUT:
        return
    try:
        revoke_tokens(user)
    except DatabaseError as exc:
        logger.error(
            "Could not revoke the websocket tokens of user %s at logout (%r): run 'manage.py migrate ravyn_channels'.",
            user.pk,
            exc,
        )


def _on_user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    # AbstractBaseUser.set_password() keeps the new password in _password until save()
    # has finished: post_save runs in between. The tokens are void already (their digest
    # no longer matches); this closes the connections they opened.
    if getattr(instance, "_password", None) is not None and getattr(instance, "pk", None) is not None:
        tokens_revoked.send(sender=type(instance), user_key=str(instance.pk))


def connect_signals() -> None:
    """Install ravyn_channels' receivers (called from ``AppConfig.ready``)."""
    from django.apps import apps
    from django.db.models.signals import post_save

    tokens_revoked.connect(_on_revoked, dispatch_uid="ravyn_channels.auth.close")
    if apps.is_installed("django.contrib.auth"):
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_out

        user_logged_out.connect(_on_logout, dispatch_uid="ravyn_channels.auth.logout")
        post_save.connect(_on_user_saved, sender=get_user_model(), dispatch_uid="ravyn_channels.auth.password")


async def token_user(websocket: WebSocket, token: str | None = Query(None)) -> Any:
    """Dependency: the user of the token offered as a subprotocol (or as ``?token=``).

    Refuses the handshake when the token is missing or invalid; otherwise
    sets ``websocket.user`` (what the route's permissions see) and returns it.
    """
    from .conf import get_settings

    raw = bearer_token(websocket) or token
    if not raw:
        raise WebSocketException(reason="no token: offer ['bearer', token] as subprotocols or send ?token=")
    user = await user_from_token(raw)
    if user is None:
        raise WebSocketException(reason="invalid or expired token")
    expires_at = _issued_at(raw) + get_settings().TOKEN_MAX_AGE
    set_token_user(websocket, user, expires_at=expires_at)
    return user
