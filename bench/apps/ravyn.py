"""ravyn_channels: the seed's handler style, ``ConnectionManager`` for rooms."""

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("bench")


@websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(data)
    except WebSocketDisconnect:
        pass


@websocket("/fanout/{room}")
async def fanout(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(data, group=room)
    except WebSocketDisconnect:
        manager.disconnect(websocket)


application = Ravyn(routes=[echo, fanout])
