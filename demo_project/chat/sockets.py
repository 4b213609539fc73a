"""The demo's websocket handlers, found automatically by ravyn_channels."""

import re

from ravyn_channels import ConnectionManager, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("demo.chat", presence=True)


@websocket("/ws/{client_id}")
async def chat_socket(websocket: WebSocket, client_id: str) -> None:
    """The seed's echo handler, unchanged."""
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"Message from {client_id}: {data}")
    except WebSocketDisconnect:
        print(f"Client {client_id} disconnected")


#: What a nickname keeps: letters, digits, spaces and . ' - (no symbols such as ✓, no control characters).
NOT_IN_NICK = re.compile(r"[^\w .'-]+")


def nickname(raw: str) -> str:
    """An anonymous visitor's name: cleaned, at most 32 characters; shown marked as a guest."""
    return " ".join(NOT_IN_NICK.sub("", raw).split())[:32] or "anonymous"


@websocket("/chat/{room:path}", max_message_size=4096)
async def chat_room(websocket: WebSocket, room: str) -> None:
    """A chat room (any name): each text a member sends reaches every member, on every process.

    Logged-in users speak under their username (``auth``: shown with ✓), anonymous ones under a
    cleaned ``?nick=`` (shown as a guest: a nickname never looks like a user). Members receive
    JSON events: ``{"type": "join" | "message" | "leave", "user", "auth", "text"}``, and the
    room's presence (``presence_state``, then ``presence_diff``) for the member list, which
    publishes only ``meta``: the name and the mark, under an opaque id.
    """
    user = websocket.user
    if user.is_authenticated:
        who = {"user": user.username, "auth": True}
    else:
        who = {"user": nickname(websocket.query_params.get("nick", "")), "auth": False}

    await manager.connect(websocket, group=room, meta=who, presence=True)
    await manager.broadcast({"type": "join", **who}, group=room)
    async for text in websocket.iter_text():  # ends when the client leaves
        await manager.broadcast({"type": "message", **who, "text": text}, group=room)
    manager.disconnect(websocket)
    await manager.broadcast({"type": "leave", **who}, group=room)
