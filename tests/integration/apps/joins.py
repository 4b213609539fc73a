"""One connection joining many rooms, for tests/integration/test_room_cap.py (no settings module).

``JOINS_CAP`` sets ``MAX_ROOMS_PER_CONNECTION`` (empty: the default). Commands, one
per text frame: ``join:<room>`` joins and subscribes to the room's presence, answering
``{"joined": room}`` or ``{"refused": room, "limit": n}`` (``TooManyRooms`` caught);
``force:<room>`` joins without catching it (the connection closes with 1008).
"""

import os

from ravyn_channels import ConnectionManager, Ravyn, TooManyRooms, WebSocket, websocket

manager = ConnectionManager("tests.joins", presence=True)


@websocket("/joins")
async def joins(websocket: WebSocket) -> None:
    await manager.connect(websocket)
    async for text in websocket.iter_text():
        command, _, room = text.partition(":")
        if command == "force":
            await manager.connect(websocket, group=room, presence=True)
            continue
        try:
            await manager.connect(websocket, group=room, meta={"n": 1}, presence=True)
        except TooManyRooms as exc:
            await websocket.send_json({"refused": exc.room, "limit": exc.limit, "code": exc.code})
        else:
            await websocket.send_json({"joined": room})


cap = os.environ.get("JOINS_CAP", "")
app = Ravyn(routes=[joins], settings={"RAVYN_CHANNELS": {"MAX_ROOMS_PER_CONNECTION": int(cap)} if cap else {}})
