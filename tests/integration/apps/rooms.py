"""A room chat driven by commands, for cross-process manager tests (settings from the env)."""

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("tests.rooms")


@websocket("/room/{room}")
async def room_socket(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    try:
        async for data in websocket.iter_text():
            command, _, rest = data.partition(":")
            if command == "say":
                await manager.broadcast(f"{room}: {rest}", group=room)
            elif command == "others":
                await manager.broadcast(f"{room}: {rest}", group=room, exclude=websocket)
            elif command == "all":
                await manager.broadcast(rest)
            elif command == "id":
                await websocket.send_text(websocket.connection_id or "")
            elif command == "to":
                target, _, text = rest.partition(" ")
                await manager.send_personal_message(text, target)
            elif command == "crash":
                raise RuntimeError("crash on purpose")
    except WebSocketDisconnect:
        manager.disconnect(websocket)


app = Ravyn(routes=[room_socket])
