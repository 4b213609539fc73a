"""The app the reliability suite attacks (standalone Ravyn; settings from the environment)."""

import asyncio
import ctypes
import gc
import json
import os
import time

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("tests.reliability")


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _closed_daphne_connections() -> int:
    """Closed websocket connections daphne still holds (none under another server)."""
    try:
        from daphne.ws_protocol import WebSocketProtocol
    except ImportError:
        return 0
    closed = WebSocketProtocol.STATE_CLOSED
    return sum(1 for o in gc.get_objects() if isinstance(o, WebSocketProtocol) and o.state == closed)


@websocket("/stats")
async def stats(websocket: WebSocket) -> None:
    """One JSON frame: live tasks and objects in the server, its RSS, this manager's local sockets."""
    await websocket.accept()
    await asyncio.sleep(0.2)  # let finished connections finish
    # daphne forgets a closed connection (its protocol, queue, request) in a check it runs once a
    # second: wait for it (bounded), or the last second's connections count as a leak.
    for _ in range(30):
        gc.collect()
        if not _closed_daphne_connections():
            break
        await asyncio.sleep(0.1)
    gc.collect()  # count live objects, not garbage waiting for the collector
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # and RSS in use, not free heap kept by the allocator
    await websocket.send_json(
        {
            "tasks": len(asyncio.all_tasks()),
            "rss_kib": rss_kib(),
            "local": len(manager.active_connections),
            "objects": len(gc.get_objects()),
        }
    )


@websocket("/feed/{count:int}")
async def feed(websocket: WebSocket, count: int) -> None:
    """Sends count x 1 KB as fast as it can, whether or not the client reads."""
    await websocket.accept()
    chunk = "x" * 1024
    sent = 0
    try:
        for sent in range(1, count + 1):
            await websocket.send_text(chunk)
            if sent % 100 == 0:
                await asyncio.sleep(0)
    except WebSocketDisconnect as exc:
        print(f"feed stopped after {sent} messages: {exc.code}", flush=True)
        return
    print(f"feed sent all {count}", flush=True)


@websocket("/big/{size:int}")
async def big(websocket: WebSocket, size: int) -> None:
    """One message of ``size`` bytes (more than SEND_BUFFER_LIMIT), then another once the client read it."""
    await websocket.accept()
    await websocket.send_bytes(b"b" * size)
    await websocket.receive_text()
    await websocket.send_text("after")


@websocket("/hold/{seconds:float}", inbox_overflow="backpressure")
async def hold(websocket: WebSocket, seconds: float) -> None:
    """Reads nothing for a while, then counts every frame until the client leaves."""
    await websocket.accept()
    await asyncio.sleep(seconds)
    count = 0
    async for _ in websocket.iter_bytes():
        count += 1
    print(f"hold counted {count}", flush=True)


@websocket("/slow")
async def slow(websocket: WebSocket) -> None:
    """Reads one frame every 10 ms: a flood fills its inbox (policy: close with 1013)."""
    await websocket.accept()
    async for _ in websocket.iter_bytes():
        await asyncio.sleep(0.01)


@websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@websocket("/room/{room}")
async def room(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    try:
        async for data in websocket.iter_text():
            command, _, rest = data.partition(":")
            if command == "say":
                await manager.broadcast(f"{room}: {rest}", group=room)
            elif command == "ping":  # answered once connect() has returned: the rooms are joined
                await websocket.send_text("pong")
            elif command == "blast":
                chunk = "b" * 1024
                for i in range(int(rest)):
                    await manager.broadcast(chunk, group=room, exclude=websocket)
                    if i % 100 == 0:
                        await asyncio.sleep(0)
                await websocket.send_text("blasted")
            elif command == "tight":
                # A producer that never yields by itself: numbered 1 KB broadcasts, back to back.
                pad = "t" * 1016
                for i in range(int(rest)):
                    await manager.broadcast(f"{i:08d}{pad}", group=room, exclude=websocket)
                await websocket.send_text("blasted")
    except WebSocketDisconnect:
        manager.disconnect(websocket)


@websocket("/gone/{tag}")
async def gone(websocket: WebSocket, tag: str) -> None:
    await websocket.accept()
    await websocket.send_text("ready")
    try:
        await websocket.receive_text()
    except WebSocketDisconnect as exc:
        print(f"gone {tag} {exc.code} {time.time():.6f}", flush=True)


@websocket("/block")
async def blocking_handler(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    time.sleep(2)  # noqa: ASYNC251  (the bug under test: sync work on the event loop)
    await websocket.send_text("done")


@websocket("/bug")
async def bug(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise ValueError("bug on purpose")


@websocket("/small", max_message_size=1000)
async def small(websocket: WebSocket) -> None:
    """Does some async work after accepting (as a presence join would), then reads until the end."""
    await websocket.accept()
    await asyncio.sleep(0.05)  # a frame sent right after the handshake is refused (1009) meanwhile
    try:
        while True:
            await websocket.receive_bytes()
    except WebSocketDisconnect as exc:
        try:
            await websocket.send_text("after")
            again = "sent"
        except WebSocketDisconnect as second:
            again = str(second.code)
        print(f"small left {exc.code} send {again}", flush=True)


settings = {"DEBUG": os.environ.get("APP_DEBUG") == "1", "RAVYN_CHANNELS": {"AUTODISCOVER": []}}
extra = os.environ.get("APP_SETTINGS")
if extra:
    settings.update(json.loads(extra))
app = Ravyn(
    routes=[stats, feed, big, hold, slow, echo, room, gone, blocking_handler, bug, small],
    settings=None if os.environ.get("DJANGO_SETTINGS_MODULE") else settings,
)
