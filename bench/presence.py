"""What presence costs: broadcast fan-out and connection churn with presence off and on.

    python bench/presence.py                # Redis at $REDIS_URL (default 127.0.0.1:6379), two daphne processes
    python bench/presence.py --memory       # one daphne process, in-memory layer
    python bench/presence.py --clients 100 --messages 2000 --cycles 500 --rounds 3

Each mode starts its own daphne processes serving the same handler, with
``ConnectionManager("bench", presence=...)``:

- ``off``: presence=False (the plain manager);
- ``on``: presence=True, every connection tracked (store writes on join/leave, heartbeats);
- ``on+watch``: presence=True and every client subscribed (``presence=True`` on connect):
  each join/leave is also a ``presence_diff`` frame to every client in the room.

Fan-out: ``--clients`` sockets in one room, split over the processes; one
client asks its handler to broadcast ``--messages`` messages; the time is
from that request until every client has received every message.
Churn: ``--cycles`` connect+close cycles, alternating processes, into a room
where one client stays (subscribed in ``on+watch``). Modes run interleaved,
``--rounds`` times; the table shows medians. Raw figures go to bench/raw/presence.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

APP = '''\
import os
from ravyn_channels import ConnectionManager, Ravyn, WebSocket, websocket

PRESENCE = os.environ["BENCH_MODE"] != "off"
WATCH = os.environ["BENCH_MODE"] == "on+watch"
manager = ConnectionManager("bench", presence=PRESENCE)


@websocket("/b/{room}")
async def bench_socket(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room, presence=WATCH)
    async for text in websocket.iter_text():
        if text.startswith("burst:"):
            for i in range(int(text[6:])):
                await manager.broadcast(str(i), group=room)
        elif text == "ping":
            await websocket.send_text("pong")


app = Ravyn(routes=[bench_socket])
'''

SETTINGS = '''\
from ravyn_channels.layers import redis_channel_layer
SECRET_KEY = "bench"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "channels", "ravyn_channels"]
DATABASES = {}
ROOT_URLCONF = "ravyn_channels.standalone"
CHANNEL_LAYERS = %(layers)s
RAVYN_CHANNELS = {"AUTODISCOVER": []}
'''

MODES = ("off", "on", "on+watch")
#: Seconds every mode waits, once its clients are quiet, before the burst.
SETTLE = 2.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daphne:
    def __init__(self, workdir: Path, mode: str):
        self.port = free_port()
        env = {**os.environ, "BENCH_MODE": mode, "DJANGO_SETTINGS_MODULE": "bench_settings", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        daphne = Path(sys.executable).parent / "daphne"
        self.log = open(workdir / f"daphne-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [str(daphne), "-b", "127.0.0.1", "-p", str(self.port), "bench_app:app"],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"daphne did not start: see {self.log.name}")

    def url(self, room: str) -> str:
        return f"ws://127.0.0.1:{self.port}/b/{room}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


async def ping(ws: Any) -> None:
    await ws.send("ping")
    while await ws.recv() != "pong":
        pass


async def quiet(ws: Any, idle: float = 0.5) -> None:
    """Read until nothing arrives for ``idle`` seconds."""
    while True:
        try:
            await asyncio.wait_for(ws.recv(), idle)
        except TimeoutError:
            return


async def fan_out(servers: list[Daphne], clients: int, messages: int) -> float:
    """Seconds from the broadcast request until every client has every message."""
    from websockets.asyncio.client import connect

    room = f"fan-{uuid.uuid4().hex[:6]}"
    sockets = [await connect(servers[i % len(servers)].url(room), max_queue=None) for i in range(clients)]
    try:
        for ws in sockets:
            await ping(ws)
        await asyncio.gather(*(quiet(ws) for ws in sockets))  # the joins' presence frames have gone by
        await asyncio.sleep(SETTLE)  # the same idle time for every mode before the burst

        async def drain(ws: Any) -> None:
            got = 0
            while got < messages:
                frame = await ws.recv()
                if not frame.startswith("{"):  # presence frames are JSON objects, broadcasts are numbers
                    got += 1

        start = time.perf_counter()
        await sockets[0].send(f"burst:{messages}")
        await asyncio.wait_for(asyncio.gather(*(drain(ws) for ws in sockets)), 300)
        return time.perf_counter() - start
    finally:
        for ws in sockets:
            await ws.close()


async def churn(servers: list[Daphne], cycles: int) -> float:
    """Seconds for ``cycles`` connect + close cycles into a room with one client staying."""
    from websockets.asyncio.client import connect

    room = f"churn-{uuid.uuid4().hex[:6]}"
    async with connect(servers[0].url(room), max_queue=None):
        start = time.perf_counter()
        for i in range(cycles):
            async with connect(servers[i % len(servers)].url(room)) as ws:
                await ping(ws)
        return time.perf_counter() - start


def layers(memory: bool, prefix: str) -> str:
    if memory:
        return "{'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}}"
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    return f"{{'default': redis_channel_layer({url!r}, prefix={prefix!r})}}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--memory", action="store_true", help="one process, in-memory layer (default: Redis, two)")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--cycles", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    results: dict[str, dict[str, list[float]]] = {m: {"fan_out_s": [], "churn_s": []} for m in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-presence-") as tmp:
        workdir = Path(tmp)
        (workdir / "bench_app.py").write_text(APP)
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        (workdir / "bench_settings.py").write_text(SETTINGS % {"layers": layers(args.memory, prefix)})
        for round_ in range(args.rounds):
            for mode in MODES:
                servers = [Daphne(workdir, mode) for _ in range(1 if args.memory else 2)]
                try:
                    took = asyncio.run(fan_out(servers, args.clients, args.messages))
                    results[mode]["fan_out_s"].append(took)
                    results[mode]["churn_s"].append(asyncio.run(churn(servers, args.cycles)))
                finally:
                    for server in servers:
                        server.stop()
                print(f"round {round_ + 1} {mode:9} fan-out {took:.2f}s churn {results[mode]['churn_s'][-1]:.2f}s",
                      file=sys.stderr)

    where = "1 daphne, in-memory layer" if args.memory else "2 daphne, RedisPubSubChannelLayer"
    print(f"\nPresence cost ({where}; {args.clients} clients, {args.messages} broadcasts, "
          f"{args.cycles} connect+close cycles; median of {args.rounds})\n")
    print("| mode | broadcasts/s | deliveries/s | vs off | connect+close cycles/s | vs off |")
    print("|---|---|---|---|---|---|")
    base_fan = statistics.median(results["off"]["fan_out_s"])
    base_churn = statistics.median(results["off"]["churn_s"])
    for mode in MODES:
        fan = statistics.median(results[mode]["fan_out_s"])
        ch = statistics.median(results[mode]["churn_s"])
        print(f"| {mode} | {args.messages / fan:,.0f} | {args.messages * args.clients / fan:,.0f} | "
              f"{base_fan / fan:.2f}x | {args.cycles / ch:,.0f} | {base_churn / ch:.2f}x |")
    raw = ROOT / "bench" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    name = "presence-memory.json" if args.memory else "presence-redis.json"
    (raw / name).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
