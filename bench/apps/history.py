"""ravyn_channels with room history: the ``ravyn`` variant's fan-out handler, ``history=HistoryConfig()``.

Every broadcast is stored (in memory, or a Redis Stream on a channels-redis
layer) and delivered in the JSON envelope carrying its position. A client that
connects with ``?since=<position>`` is sent what it missed first; with
``&timing=1`` the handler then sends ``timing:<ms>``, the server's time for
``manager.connect`` (accept, join, read the history, send the replay).
"""

import time

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.history import HistoryConfig

manager = ConnectionManager("bench-history", history=HistoryConfig())


@websocket("/fanout/{room}")
async def fanout(websocket: WebSocket, room: str) -> None:
    since = websocket.query_params.get("since") or None
    start = time.perf_counter()
    await manager.connect(websocket, group=room, since=since)
    if websocket.query_params.get("timing"):
        await websocket.send_text(f"timing:{(time.perf_counter() - start) * 1000:.3f}")
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(data, group=room)
    except WebSocketDisconnect:
        manager.disconnect(websocket)


application = Ravyn(routes=[fanout])
