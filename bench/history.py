"""What history costs: broadcasts with history off and on, resume of missed messages, Redis memory.

    python bench/history.py                 # in memory (one daphne) and Redis at $REDIS_URL (two daphnes)
    python bench/history.py --messages 2000 --clients 20 --rounds 3

- Fan-out: ``--clients`` sockets in one room (split over the processes); one
  asks its handler to broadcast ``--messages`` messages; the time is from that
  request until every client has every message. ``off`` is a plain manager,
  ``on`` the same handler with ``HistoryConfig`` (each message stored, then
  delivered in a JSON envelope with its position). Modes interleave, ``--rounds``
  times; medians.
- Resume: a client comes back with a position 1,000 messages old: the time from
  its connect to the last replayed frame, measured by the client, and the time of
  ``manager.connect`` measured in the handler (the server's time: accept, join,
  read the history, send the replay).
- Redis memory: ``MEMORY USAGE`` of a room's stream and meta hash holding 1,000
  messages of 200 bytes.
Raw figures go to bench/raw/history.json.
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

APP = """\
import time

from ravyn_channels import ConnectionManager, Ravyn, WebSocket, websocket
from ravyn_channels.history import HistoryConfig

managers = {
    "off": ConnectionManager("bench.off"),
    "on": ConnectionManager("bench.on", history=HistoryConfig(max_messages=5000, max_age=600)),
}


@websocket("/{mode}/{room}")
async def bench_socket(websocket: WebSocket, mode: str, room: str) -> None:
    manager = managers[mode]
    since = websocket.query_params.get("since")
    start = time.perf_counter()
    await manager.connect(websocket, group=room, since=since or None)
    if websocket.query_params.get("timing"):
        # The server's time for connect(): accept, join, read the history, send the replay.
        await websocket.send_text(f"timing:{(time.perf_counter() - start) * 1000:.2f}")
    async for text in websocket.iter_text():
        if text.startswith("burst:"):
            count, _, size = text[6:].partition(":")
            pad = "x" * int(size or 0)
            for i in range(int(count)):
                await manager.broadcast(f"{i}{pad}", group=room)
        elif text == "ping":
            await websocket.send_text("pong")


app = Ravyn(routes=[bench_socket])
"""

SETTINGS = """\
from ravyn_channels.layers import redis_channel_layer
SECRET_KEY = "bench"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "channels", "ravyn_channels"]
DATABASES = {}
ROOT_URLCONF = "ravyn_channels.standalone"
CHANNEL_LAYERS = %(layers)s
RAVYN_CHANNELS = {"AUTODISCOVER": []}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Daphne:
    def __init__(self, workdir: Path):
        self.port = free_port()
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench_settings", "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        self.log = open(workdir / f"daphne-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(self.port), "bench_app:app"],
            cwd=workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
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

    def url(self, mode: str, room: str, since: str = "") -> str:
        return f"ws://127.0.0.1:{self.port}/{mode}/{room}" + (f"?since={since}" if since else "")

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


async def fan_out(servers: list[Daphne], mode: str, clients: int, messages: int) -> float:
    """Seconds from the burst request until every client has every message."""
    from websockets.asyncio.client import connect

    room = uuid.uuid4().hex[:8]
    sockets = [await connect(servers[i % len(servers)].url(mode, room), max_queue=None) for i in range(clients)]
    try:
        for ws in sockets:
            await ping(ws)
        await asyncio.sleep(0.5)

        async def drain(ws: Any) -> None:
            for _ in range(messages):
                await ws.recv()

        start = time.perf_counter()
        await sockets[0].send(f"burst:{messages}")
        await asyncio.wait_for(asyncio.gather(*(drain(ws) for ws in sockets)), 300)
        return time.perf_counter() - start
    finally:
        for ws in sockets:
            await ws.close()


async def resume(server: Daphne, missed: int) -> tuple[float, float]:
    """(client, server) seconds for connect(since=...) replaying ``missed`` messages.

    Client: from connect to the last replayed frame. Server: ``manager.connect`` alone,
    as the handler measured it."""
    from websockets.asyncio.client import connect

    room = uuid.uuid4().hex[:8]
    async with connect(server.url("on", room), max_queue=None) as ws:
        await ws.send("burst:1")
        since = json.loads(await ws.recv())["position"]
        await ws.send(f"burst:{missed}")
        for _ in range(missed):
            await ws.recv()
    start = time.perf_counter()
    async with connect(server.url("on", room, since) + "&timing=1", max_queue=None) as back:
        for _ in range(missed):
            await back.recv()
        seen = time.perf_counter() - start
        timing = await back.recv()
        return seen, float(str(timing).partition(":")[2]) / 1000


async def redis_memory(server: Daphne, url: str, prefix: str) -> int:
    """Bytes of a room's stream + meta hash holding 1,000 messages of 200 bytes."""
    import redis
    from websockets.asyncio.client import connect

    from ravyn_channels.rooms import group_name

    room = uuid.uuid4().hex[:8]
    async with connect(server.url("on", room), max_queue=None) as ws:
        await ws.send("burst:1000:197")
        for _ in range(1000):
            await ws.recv()
    client = redis.Redis.from_url(url)
    base = f"{prefix}:history:{group_name(room, 'bench.on')}"
    return int(client.memory_usage(base) or 0) + int(client.memory_usage(f"{base}:meta") or 0)


def cleanup(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    for layer in ("memory", "redis"):
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            prefix = f"bench-history-{uuid.uuid4().hex[:8]}"
            layers = (
                {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
                if layer == "memory"
                else f"{{'default': redis_channel_layer({url!r}, prefix={prefix!r})}}"
            )
            (work / "bench_settings.py").write_text(SETTINGS % {"layers": layers})
            (work / "bench_app.py").write_text(APP)
            servers = [Daphne(work) for _ in range(1 if layer == "memory" else 2)]
            try:
                times: dict[str, list[float]] = {"off": [], "on": []}
                for _ in range(args.rounds):
                    for mode in ("off", "on"):
                        times[mode].append(await fan_out(servers, mode, args.clients, args.messages))
                rate = {mode: args.messages / statistics.median(t) for mode, t in times.items()}
                resumes = [await resume(servers[0], 1000) for _ in range(args.rounds)]
                results[layer] = {
                    "broadcasts_per_s_off": rate["off"],
                    "broadcasts_per_s_on": rate["on"],
                    "ratio": rate["on"] / rate["off"],
                    "resume_1000_ms": 1000 * statistics.median(r[0] for r in resumes),
                    "resume_1000_server_ms": 1000 * statistics.median(r[1] for r in resumes),
                }
                if layer == "redis":
                    results[layer]["redis_bytes_per_1000x200"] = await redis_memory(servers[0], url, prefix)
            finally:
                for server in servers:
                    server.stop()
                if layer == "redis":
                    cleanup(url, prefix)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    results = asyncio.run(run(args))
    raw = ROOT / "bench" / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "history.json").write_text(json.dumps(results, indent=2))
    print(
        "| layer | broadcasts/s off | on | on/off | resume 1,000: client ms | server ms | Redis bytes / 1,000 x 200 B |"
    )
    print("|---|---|---|---|---|---|---|")
    for layer, r in results.items():
        print(
            f"| {layer} | {r['broadcasts_per_s_off']:.0f} | {r['broadcasts_per_s_on']:.0f} | {r['ratio']:.2f} | "
            f"{r['resume_1000_ms']:.0f} | {r['resume_1000_server_ms']:.1f} | {r.get('redis_bytes_per_1000x200', '-')} |"
        )


if __name__ == "__main__":
    main()
