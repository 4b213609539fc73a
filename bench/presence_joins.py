"""What joining rooms costs the server: many rooms from one client, and joins into big rooms.

    python bench/presence_joins.py                 # the demo on one daphne, in-memory layer
    python bench/presence_joins.py --redis         # the demo on one daphne, Redis pub/sub layer
    python bench/presence_joins.py --bare          # presence alone: the demo's handler without its broadcasts

Serves ``demo_project`` (presence on, every member subscribed, as the demo's chat does; or,
with ``--bare``, a handler that only connects with the same meta and presence) and measures
the daphne process's CPU time (user + system, from ``psutil``):

- ``rooms``: one anonymous client opens ``--rooms`` sockets, one per room (``/chat/r<i>``), and
  keeps them open; the CPU spent from the first handshake until the last ``presence_state``.
- ``size``: ``--size`` members sit in one room (subscribed); then ``--joins`` more clients join
  and leave it one at a time; the CPU per join+leave, minus what the sitting members' own
  ``presence_diff`` frames cost (measured separately as the frames they receive), is what the
  join costs the server for the room's size. The demo also broadcasts a join and a leave
  message to the whole room (its own choice, one frame per member each); ``--bare`` shows
  what presence alone costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BARE = """\
from ravyn_channels import ConnectionManager, Ravyn, WebSocket, websocket

manager = ConnectionManager("bench.joins", presence=True)


@websocket("/chat/{room:path}")
async def chat_room(websocket: WebSocket, room: str) -> None:
    who = {"user": websocket.query_params.get("nick", ""), "auth": False}
    await manager.connect(websocket, group=room, meta=who, presence=True)
    async for _ in websocket.iter_text():
        pass


app = Ravyn(routes=[chat_room], settings={"RAVYN_CHANNELS": {"AUTODISCOVER": []}})
"""


def start(redis: bool, tmp: Path, bare: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    (tmp / "bare_joins.py").write_text(BARE)
    env.update(
        DJANGO_SETTINGS_MODULE="demo_project.settings",
        PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}",
        DEMO_DB=str(tmp / "demo.sqlite3"),
        DJANGO_DEBUG="0",
        REDIS_URL=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0") if redis else "",
    )
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    daphne = str(Path(sys.executable).parent / "daphne")
    log = open(tmp / "daphne.log", "wb")
    profile = os.environ.get("PROFILE")  # a file name: run daphne under cProfile
    prefix = [sys.executable, "-m", "cProfile", "-o", profile, daphne] if profile else [daphne]
    app = "demo_project.asgi:application"
    if bare:
        del env["DJANGO_SETTINGS_MODULE"]
        app = "bare_joins:app"
    argv = [*prefix, "-b", "127.0.0.1", "-p", str(port), app]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            asyncio.run(_probe(port))
            return proc, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("daphne did not start")


async def _probe(port: int) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{port}/chat/probe?nick=p", open_timeout=2) as ws:
        await ws.recv()


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


async def until_state(ws: websockets.ClientConnection) -> None:
    while True:
        event = json.loads(await ws.recv())
        if event.get("type") == "presence_state":
            return


async def many_rooms(port: int, proc: psutil.Process, rooms: int, tag: str) -> float:
    before = cpu(proc)
    sockets = []
    for i in range(rooms):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat/{tag}-{i}?nick=mallory", max_queue=None)
        await until_state(ws)
        sockets.append(ws)
    spent = cpu(proc) - before
    for ws in sockets:
        await ws.close()
    await asyncio.sleep(1.0)
    return spent


RECEIVED = [0]


async def drain(ws: websockets.ClientConnection) -> None:
    try:
        async for _ in ws:
            RECEIVED[0] += 1
    except websockets.ConnectionClosed:
        pass


async def join_cost(port: int, proc: psutil.Process, size: int, joins: int, tag: str) -> None:
    room = f"{tag}-big{size}"
    sitting = []
    for i in range(size):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/chat/{room}?nick=m{i}", max_queue=None, open_timeout=60)
        await until_state(ws)
        sitting.append(ws)
    readers = [asyncio.create_task(drain(ws)) for ws in sitting]
    while True:  # let the server finish writing what filling the room queued
        RECEIVED[0] = 0
        await asyncio.sleep(1.0)
        if RECEIVED[0] == 0:
            break
    async def visit() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{port}/chat/{room}?nick=newcomer", max_queue=None) as ws:
            await until_state(ws)

    before, RECEIVED[0] = cpu(proc), 0
    for _ in range(joins):  # one after the other
        await visit()
    await asyncio.sleep(1.5)
    per_join = (cpu(proc) - before) / joins
    one_by_one = RECEIVED[0]
    before, RECEIVED[0] = cpu(proc), 0
    await asyncio.gather(*(visit() for _ in range(joins)))  # all at once
    await asyncio.sleep(1.5)
    per_burst_join = (cpu(proc) - before) / joins
    print(
        f"join+leave into a room of {size}: {per_join * 1000:.2f} ms server CPU per join one after the other "
        f"({one_by_one} frames to the members), {per_burst_join * 1000:.2f} ms in a burst of {joins} "
        f"({RECEIVED[0]} frames)"
    )
    for ws in sitting:
        await ws.close()
    await asyncio.gather(*readers)
    await asyncio.sleep(1.0)


async def main_async(args: argparse.Namespace, port: int, proc: psutil.Process) -> None:
    tag = f"pj{os.getpid()}"
    spent = await many_rooms(port, proc, args.rooms, tag)
    print(f"one client, {args.rooms} rooms: {spent:.2f} s server CPU ({spent / args.rooms * 1000:.1f} ms per room)")
    for size in args.sizes:
        await join_cost(port, proc, size, args.joins, tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--bare", action="store_true", help="presence alone, without the demo's broadcasts")
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000])
    parser.add_argument("--joins", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, port = start(args.redis, Path(tmp), args.bare)
        try:
            asyncio.run(main_async(args, port, psutil.Process(server.pid)))
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(5)


if __name__ == "__main__":
    main()
