"""A raw handler resuming from ``?since=`` in a room with history (settings from the env).

Text commands: ``say:TEXT`` broadcasts TEXT; ``burst:A:B:TAG`` broadcasts ``TAG<i>`` for
i in A..B (TAG optional); ``pos`` answers the room's head position. A history store
failure is answered with ``{"type": "unavailable"}`` instead of closing.
"""

from __future__ import annotations

import json

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, websocket
from ravyn_channels.history import HistoryConfig, HistoryUnavailable

manager = ConnectionManager("tests.history", history=HistoryConfig(max_messages=20_000, max_age=300))
#: The same rooms without history (``/plain/{room}``), for comparisons.
plain = ConnectionManager("tests.history.plain")


@websocket("/history/{room}")
async def history_socket(websocket: WebSocket, room: str) -> None:
    await serve(manager, websocket, room)


@websocket("/plain/{room}")
async def plain_socket(websocket: WebSocket, room: str) -> None:
    await serve(plain, websocket, room)


async def serve(manager: ConnectionManager, websocket: WebSocket, room: str) -> None:
    since = websocket.query_params.get("since")
    await manager.connect(websocket, group=room, since=since or None)
    async for data in websocket.iter_text():
        command, _, rest = data.partition(":")
        try:
            if command == "say":
                await manager.broadcast(rest, group=room)
            elif command == "burst":
                first, last, tag = [*rest.split(":"), ""][:3]
                for i in range(int(first), int(last) + 1):
                    await manager.broadcast(f"{tag}{i}", group=room)
            elif command == "pos":
                page = await manager.history(room, limit=0)
                await websocket.send_text(json.dumps({"type": "pos", "position": str(page.position)}))
        except HistoryUnavailable:
            await websocket.send_text(json.dumps({"type": "unavailable"}))


app = Ravyn(routes=[history_socket, plain_socket])
