"""Closing sockets from anywhere: one connection, a room, or every socket of a user, on every process.

Every connection of a generated consumer is *tracked* once it is admitted: it
gets a ``connection_id`` and is recorded with its user, session key and session
auth hash, and this process's channel joins one private group of the channel
layer (``OPS_GROUP``, named with ``rooms.private_group``: no room's group, so no
plain consumer ever receives these events). A close request is one
``ravyn.close`` event: sent to that group (a user, a room), or straight to the
process channel that holds a connection (one connection). Each process closes
its own matching sockets with the code and reason given; the handler sees
``WebSocketDisconnect(code, reason)``.

When a login ends (``CLOSE_ON_LOGOUT``, on by default), Django's signals send
the same event: ``user_logged_out`` closes the sockets of that session (all the
user's sockets when the request had no session), and a save of the user that
deactivates it or changes its password closes the user's sockets opened before
(their session auth hash no longer matches). A revoked token
(``ravyn_channels.auth``, ``CLOSE_ON_TOKEN_REVOKE``) sends it too, marked
``token``: only the user's sockets authenticated by a token close.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import status
from .conf import get_settings
from .hub import HANDLERS, _Hub, _hub, _hubs
from .presence import identify, user_key
from .rooms import private_group
from .safetext import escape
from .websocket import WebSocket, WebSocketState

__all__ = [
    "CLOSE",
    "OPS_GROUP",
    "SESSION_END_CODE",
    "disconnect_user",
    "disconnect_user_sync",
    "kick",
    "kick_sync",
]

logger = logging.getLogger("ravyn_channels")

#: The layer event that closes sockets (on ``OPS_GROUP`` or a process channel only).
CLOSE = "ravyn.close"
#: The private group every process channel with live connections is in.
OPS_GROUP = private_group("ravyn.ops")
#: The close code a client sees when its login ended (logout, deactivation, password change).
SESSION_END_CODE = status.WS_1008_POLICY_VIOLATION
DEFAULT_CODE = status.WS_1008_POLICY_VIOLATION
#: The scope key a token dependency sets (``ravyn_channels.auth.set_token_user``): the
#: token's expiry as a Unix time, or ``None``. Its presence marks a token-authenticated socket.
TOKEN_SCOPE_KEY = "ravyn_channels.token_expires"


@dataclass
class _Info:
    user: str | None
    session: str | None
    auth_hash: str | None
    token: bool = False


class _Registry:
    """This process's tracked sockets on one hub."""

    def __init__(self) -> None:
        self.info: dict[WebSocket, _Info] = {}
        self.by_user: dict[str, dict[WebSocket, None]] = {}

    def add(self, ws: WebSocket, info: _Info) -> None:
        self.info[ws] = info
        if info.user is not None:
            self.by_user.setdefault(info.user, {})[ws] = None

    def remove(self, ws: WebSocket) -> None:
        info = self.info.pop(ws, None)
        if info is not None and info.user is not None:
            sockets = self.by_user.get(info.user)
            if sockets is not None:
                sockets.pop(ws, None)
                if not sockets:
                    del self.by_user[info.user]


_registries: weakref.WeakKeyDictionary[_Hub, _Registry] = weakref.WeakKeyDictionary()


def _describe(scope: Mapping[str, Any]) -> _Info:
    user = scope.get("user")
    user_id = auth_hash = None
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
        user_id = str(user.pk)
        get_hash = getattr(user, "get_session_auth_hash", None)
        if callable(get_hash):
            auth_hash = str(get_hash())
    session = scope.get("session")
    key = getattr(session, "session_key", None) if session is not None else None
    return _Info(user_id, key if isinstance(key, str) else None, auth_hash, TOKEN_SCOPE_KEY in scope)


async def track(ws: WebSocket) -> None:
    """Record an admitted connection so it can be closed from anywhere (called by the consumer).

    Does nothing without a channel layer. A failure is logged, never raised: the
    connection works, it just cannot be closed from another process.
    """
    alias = get_settings().CHANNEL_LAYER
    try:
        if get_channel_layer(alias) is None:
            return
        hub = await _hub(alias)
    except Exception as exc:
        logger.debug("Connection not tracked for remote close (%r)", exc)
        return
    if ws.connection_id is None:
        ws.connection_id = hub.new_id(ws)
    registry = _registries.get(hub)
    if registry is None:
        registry = _registries[hub] = _Registry()
    registry.add(ws, _describe(ws.scope))
    consumer = ws.consumer
    if consumer is not None:
        consumer.on_close(lambda: _untrack(hub, ws))
    await hub.join(OPS_GROUP, ws)


async def _untrack(hub: _Hub, ws: WebSocket) -> None:
    registry = _registries.get(hub)
    if registry is not None:
        registry.remove(ws)
    await hub.leave(OPS_GROUP, ws)


async def close_socket(ws: WebSocket, code: int, reason: str = "") -> bool:
    """Close ``ws`` from the server with ``code`` and ``reason``; its handler sees ``WebSocketDisconnect``.

    Before the handshake is accepted this refuses it. Returns whether the socket
    was still open.
    """
    if ws.close_code is not None or ws.application_state is WebSocketState.DISCONNECTED:
        return False
    consumer = ws.consumer
    try:
        if consumer is not None:
            # Sends the close (or refuses the handshake) and drops a client that never answers
            # it after CLOSE_TIMEOUT.
            await consumer._close(code, reason)
        else:
            ws.application_state = WebSocketState.DISCONNECTED
            await ws._send({"type": "websocket.close", "code": code, "reason": reason})
    except Exception as exc:  # the client went at the same moment
        logger.debug("Close frame not sent (%r)", exc)
    ws._client_gone(code, reason)
    if consumer is not None:
        consumer.inbox.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
    return True


def check_close(code: int, reason: str) -> None:
    """Raise ``ValueError`` unless a server may close with ``code`` and ``reason``."""
    status.check_sendable(code)
    if not isinstance(reason, str) or len(reason.encode("utf-8")) > 123:
        raise ValueError(f"A close reason is a str of at most 123 UTF-8 bytes (RFC 6455), got {reason!r}.")


def _in_group(ws: WebSocket, group: str) -> bool:
    """Whether ``ws`` is a member of the Channels group ``group`` on any hub of this loop."""
    for hub in _hubs.get(asyncio.get_running_loop(), {}).values():
        if ws in hub.members.get(group, ()):
            return True
    return False


def _select(hub: _Hub, event: dict[str, Any]) -> list[WebSocket]:
    """This process's sockets that ``event`` closes."""
    connection = event.get("connection")
    if isinstance(connection, str):
        ws = hub.by_id.get(connection)
        return [ws] if ws is not None else []
    room = event.get("room")
    if isinstance(room, str):
        found: dict[WebSocket, None] = {}
        for each in _hubs.get(asyncio.get_running_loop(), {}).values():
            found.update(dict.fromkeys(each.members.get(room, ())))
        return list(found)
    user = event.get("user")
    registry = _registries.get(hub)
    if not isinstance(user, str) or registry is None:
        return []
    manager, session, auth_hash = event.get("manager"), event.get("session"), event.get("hash")
    chosen = []
    for ws in list(registry.by_user.get(user, ())):
        info = registry.info.get(ws)
        if info is None:
            continue
        if isinstance(manager, str) and not _in_group(ws, manager):
            continue
        if isinstance(session, str) and info.session != session:
            continue
        if isinstance(auth_hash, str) and not event.get("inactive") and info.auth_hash == auth_hash:
            continue
        if event.get("token") and not info.token:
            continue  # a revoked token: sockets authenticated otherwise (a session) stay
        chosen.append(ws)
    return chosen


async def _receive(hub: _Hub, event: dict[str, Any]) -> None:
    """Handle a ``ravyn.close`` event that reached this process."""
    if event.get("origin") == hub.channel:
        return  # already done locally by the sender
    await _apply(hub, event)


async def _apply(hub: _Hub, event: dict[str, Any]) -> int:
    code = event.get("code")
    code = code if isinstance(code, int) and status.is_sendable(code) else DEFAULT_CODE
    reason = event.get("reason")
    reason = reason if isinstance(reason, str) else ""
    closed = 0
    for ws in _select(hub, event):
        if await close_socket(ws, code, reason):
            closed += 1
            logger.info(
                "Closed websocket %s (%s) with %d: %s",
                escape(ws.scope.get("path", "?")),
                ws.handler_name,
                code,
                escape(event.get("why") or reason or "closed by the server"),
            )
    return closed


#: The event asking a process for its live rooms (``liveadmin``), and the reply's type.
REPORT = "ravyn.report"
REPORT_REPLY = "ravyn.report.reply"


def local_rooms() -> list[dict[str, Any]]:
    """This process's rooms of every manager: members with their connection id and user."""
    from .manager import _managers

    rooms: dict[tuple[str, str], dict[str, Any]] = {}
    for manager in list(_managers.values()):
        for ws, groups in list(manager._local.items()):
            if ws.close_code is not None or ws.application_state is WebSocketState.DISCONNECTED:
                continue  # being closed
            username = identify(ws.scope.get("user"))[1]
            for group in groups:
                label = manager._labels.get(group)
                if label is None:
                    continue  # the everyone-group or a private group
                room = rooms.setdefault(
                    (manager.name, group), {"manager": manager.name, "room": label, "group": group, "members": []}
                )
                room["members"].append({"id": ws.connection_id, "user": username, "path": ws.scope.get("path", "")})
    return list(rooms.values())


async def _answer(hub: _Hub, event: dict[str, Any]) -> None:
    reply = event.get("reply")
    if isinstance(reply, str):
        await hub.layer.send(reply, {"type": REPORT_REPLY, "process": hub.channel, "rooms": local_rooms()})


HANDLERS[CLOSE] = _receive
HANDLERS[REPORT] = _answer


def _layer(alias: str | None) -> Any:
    name = alias or get_settings().CHANNEL_LAYER
    layer = get_channel_layer(name)
    if layer is None:
        raise RuntimeError(
            f"Closing sockets on other processes needs a channel layer, and CHANNEL_LAYERS has no {name!r}."
        )
    return layer


def _local_hub(alias: str | None) -> _Hub | None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return _hubs.get(loop, {}).get(alias or get_settings().CHANNEL_LAYER)


async def _send(event: dict[str, Any], layer_alias: str | None = None) -> None:
    """Apply ``event`` here (if this loop has a hub) and send it to the other processes."""
    check_close(event["code"], event["reason"])
    hub = _local_hub(layer_alias)
    layer = _layer(layer_alias)
    connection = event.get("connection")
    if hub is not None:
        event = dict(event, origin=hub.channel)
        await _apply(hub, event)
    if isinstance(connection, str):
        channel = connection.rpartition("#")[0]
        if not channel:
            raise ValueError(f"{connection!r} is not a connection_id (WebSocket.connection_id).")
        if hub is None or channel != hub.channel:
            await layer.send(channel, event)
    else:
        await layer.group_send(OPS_GROUP, event)


def user_event(
    user: Any,
    code: int,
    reason: str,
    *,
    manager: str | None = None,
    session: str | None = None,
    token: bool = False,
) -> dict[str, Any]:
    """The ``ravyn.close`` event for every socket of ``user`` (through ``manager``'s group, of ``session``,
    authenticated by a token when ``token``)."""
    event: dict[str, Any] = {"type": CLOSE, "user": user_key(user), "code": code, "reason": reason}
    if manager is not None:
        event["manager"] = manager
    if session is not None:
        event["session"] = session
    if token:
        event["token"] = True
    return event


async def disconnect_user(user: Any, *, code: int = DEFAULT_CODE, reason: str = "", session: str | None = None) -> None:
    """Close every socket of ``user`` (a Django user or its pk) on every process.

    ``session`` (a session key) limits it to the sockets opened with that
    session. The client sees ``code`` and ``reason``; the handler gets
    ``WebSocketDisconnect(code, reason)``.
    """
    await _send(user_event(user, code, reason, session=session))


def disconnect_user_sync(user: Any, *, code: int = DEFAULT_CODE, reason: str = "", session: str | None = None) -> None:
    """``disconnect_user`` for sync code (views, signals, commands)."""
    async_to_sync(_send)(user_event(user, code, reason, session=session))


def _connection_id(connection: WebSocket | str) -> str:
    cid = connection.connection_id if isinstance(connection, WebSocket) else connection
    if not isinstance(cid, str) or "#" not in cid:
        raise ValueError(
            f"kick() takes a WebSocket with a connection_id or a connection_id string, got {connection!r}."
        )
    return cid


def connection_event(connection: WebSocket | str, code: int, reason: str) -> dict[str, Any]:
    """The ``ravyn.close`` event for one connection (a ``WebSocket`` or its ``connection_id``)."""
    return {"type": CLOSE, "connection": _connection_id(connection), "code": code, "reason": reason}


async def kick(connection: WebSocket | str, *, code: int = DEFAULT_CODE, reason: str = "") -> None:
    """Close one connection (a ``WebSocket`` or its ``connection_id``), on whichever process holds it."""
    await _send(connection_event(connection, code, reason))


def kick_sync(connection: str, *, code: int = DEFAULT_CODE, reason: str = "") -> None:
    """``kick`` for sync code, by ``connection_id``."""
    async_to_sync(_send)(connection_event(connection, code, reason))


def room_event(group: str, code: int, reason: str) -> dict[str, Any]:
    """The ``ravyn.close`` event for every member of the Channels group ``group`` (a manager's room)."""
    return {"type": CLOSE, "room": group, "code": code, "reason": reason}


async def send_event(event: dict[str, Any], layer_alias: str | None = None) -> None:
    """Apply a ``ravyn.close`` event here and send it to every other process."""
    await _send(event, layer_alias)


def send_event_sync(event: dict[str, Any], layer_alias: str | None = None) -> None:
    """``send_event`` for sync code."""
    async_to_sync(_send)(event, layer_alias)


def send_event_logged(event: dict[str, Any]) -> None:
    """``send_event_sync`` for signal receivers: nothing without a channel layer (no sockets to close);
    a layer failure is logged as an ERROR, never raised into the logout, save or revocation."""
    if get_channel_layer(get_settings().CHANNEL_LAYER) is None:
        return
    try:
        send_event_sync(event)
    except Exception as exc:
        logger.error(
            "Could not close the websockets of user %s (%s): the channel layer failed (%r).",
            event.get("user"),
            event.get("reason"),
            exc,
        )
