"""ravyn_channels with presence: the ``ravyn`` variant's fan-out handler, ``ConnectionManager(presence=True)``.

Every connection is tracked in the presence store (the in-memory one, or Redis
on a channels-redis layer): a join and a leave write to it and tell the other
processes; broadcasts are what they are without presence.
"""

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("bench-presence", presence=True)


@websocket("/fanout/{room}")
async def fanout(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(data, group=room)
    except WebSocketDisconnect:
        manager.disconnect(websocket)


application = Ravyn(routes=[fanout])
