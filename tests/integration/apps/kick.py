"""Sockets for tests/integration/test_ops.py: closing connections from anywhere.

``?user=PK`` makes the socket's ``websocket.user`` a logged-in user with that pk
(no database: a stand-in for Django's auth, set by an ASGI wrapper).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, ops, websocket

manager = ConnectionManager("tests.kick")


class User:
    is_authenticated = True

    def __init__(self, pk: str):
        self.pk = pk
        self.username = f"user{pk}"

    def get_session_auth_hash(self) -> str:
        return "hash"


async def commands(websocket: WebSocket) -> None:
    """Each text is ``command:argument``; the handler reports the close it saw in the server log."""
    try:
        while True:
            command, _, arg = (await websocket.receive_text()).partition(":")
            if command == "user":
                await manager.disconnect_user(arg, code=4001, reason="bye user")
            elif command == "room":
                await manager.disconnect_room(arg or None, code=4002, reason="room closed")
            elif command == "kick":
                await manager.kick(arg, code=4003, reason="kicked")
            elif command == "everywhere":
                await ops.disconnect_user(arg, code=4004, reason="everywhere")
            elif command == "ping":
                await websocket.send_text("pong")
    except WebSocketDisconnect as exc:
        print(f"{websocket.connection_id} handler saw {exc.code} {exc.reason!r}", flush=True)


@websocket("/k/{room}")
async def in_room(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    await websocket.send_text(websocket.connection_id or "")
    await commands(websocket)


@websocket("/plain")
async def plain(websocket: WebSocket) -> None:
    """Not connected to any manager: only ravyn_channels.ops reaches it."""
    await websocket.accept()
    await websocket.send_text(websocket.connection_id or "")
    await commands(websocket)


def with_user(app: Any) -> Any:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            query = parse_qs(scope.get("query_string", b"").decode())
            if "user" in query:
                scope["user"] = User(query["user"][0])
        await app(scope, receive, send)

    return wrapped


app = with_user(Ravyn(routes=[in_room, plain]))
