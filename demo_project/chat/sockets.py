"""The demo's websocket handlers, found automatically by ravyn_channels."""

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


@websocket("/chat/{room:path}", max_message_size=4096)
async def chat_room(websocket: WebSocket, room: str) -> None:
    """A chat room (any name): each text a member sends reaches every member, on every process.

    Logged-in users speak under their username, anonymous ones under ``?nick=``.
    Members receive JSON events: ``{"type": "join" | "message" | "leave", "user", "auth", "text"}``,
    and the room's presence (``presence_state``, then a ``presence_diff`` per change) for the member list.
    """
    user = websocket.user
    if user.is_authenticated:
        who = {"user": user.username, "auth": True}
    else:
        who = {"user": websocket.query_params.get("nick", "").strip()[:32] or "anonymous", "auth": False}

    await manager.connect(websocket, group=room, meta=who, presence=True)
    await manager.broadcast({"type": "join", **who}, group=room)
    async for text in websocket.iter_text():  # ends when the client leaves
        await manager.broadcast({"type": "message", **who, "text": text}, group=room)
    manager.disconnect(websocket)
    await manager.broadcast({"type": "leave", **who}, group=room)
