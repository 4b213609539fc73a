"""The fan-out reference: ravyn_channels handlers with the seed's plain list manager.

One process only: a loop over this process's sockets, no channel layer.
"""

from ravyn_channels import Ravyn, WebSocket, WebSocketDisconnect, websocket


class ListManager:
    """The seed page's ``ConnectionManager``, one list per room."""

    def __init__(self) -> None:
        self.rooms: dict[str, list[WebSocket]] = {}

    async def connect(self, websocket: WebSocket, room: str) -> None:
        await websocket.accept()
        self.rooms.setdefault(room, []).append(websocket)

    def disconnect(self, websocket: WebSocket, room: str) -> None:
        self.rooms[room].remove(websocket)

    async def broadcast(self, message: str, room: str) -> None:
        for connection in self.rooms[room]:
            await connection.send_text(message)


manager = ListManager()


@websocket("/fanout/{room}")
async def fanout(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, room)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(data, room)
    except WebSocketDisconnect:
        manager.disconnect(websocket, room)


application = Ravyn(routes=[fanout])
