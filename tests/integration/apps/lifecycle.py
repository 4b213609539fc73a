"""Sockets for tests/integration/test_lifecycle.py: a manager whose room hooks print one line each."""

from __future__ import annotations

import os
import time

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("tests.lifecycle")


@manager.on_first_join
async def started(room: str) -> None:
    print(f"HOOK {time.time():.6f} first {room} pid={os.getpid()}", flush=True)


@manager.on_last_leave
async def stopped(room: str) -> None:
    print(f"HOOK {time.time():.6f} last {room} pid={os.getpid()}", flush=True)


@websocket("/life/{room}")
async def life(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    await websocket.send_text("joined")
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        manager.disconnect(websocket)


app = Ravyn(routes=[life])
