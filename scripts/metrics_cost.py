"""What metrics cost: echo and broadcast on daphne with RAVYN_CHANNELS["METRICS"] off and on.

    /work/venv/bin/python scripts/metrics_cost.py [--rounds 3] [--seconds 4]

Starts one daphne process per run (in-memory layer), alternating off/on runs to
spread the machine's noise over both, and reports for each mode the median of:
echo round trips per second (16 clients, one message in flight each) and
broadcast deliveries per second (one sender, 64 receivers in one room), with
the server's CPU time per message (user + system, from /proc), which is
less sensitive to the client sharing the machine than throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]

APP = '''
from ravyn_channels import ConnectionManager, Ravyn, WebSocket, WebSocketDisconnect, websocket

manager = ConnectionManager("cost")

@websocket("/echo")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        async for text in websocket.iter_text():
            await websocket.send_text(text)
    except WebSocketDisconnect:
        pass

@websocket("/room")
async def room(websocket: WebSocket) -> None:
    await manager.connect(websocket, group="r")
    try:
        async for text in websocket.iter_text():
            await manager.broadcast(text, group="r")
    except WebSocketDisconnect:
        manager.disconnect(websocket)

app = Ravyn(routes=[echo, room])
'''

SETTINGS = '''
from ravyn_channels.standalone import *  # noqa
SECRET_KEY = "x"
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "channels", "ravyn_channels"]
DATABASES = {}
ROOT_URLCONF = "ravyn_channels.standalone"
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
RAVYN_CHANNELS = {"AUTODISCOVER": [], "METRICS": %s}
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(directory: Path, metrics: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    settings = f"cost_{'on' if metrics else 'off'}"
    env = dict(os.environ, PYTHONPATH=f"{directory}:{ROOT}", DJANGO_SETTINGS_MODULE=settings)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "daphne"), "-b", "127.0.0.1", "-p", str(port), "cost_app:app"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("daphne did not start")


async def echo(port: int, seconds: float, pid: int) -> tuple[float, float]:
    clients = [await connect(f"ws://127.0.0.1:{port}/echo") for _ in range(16)]
    count = 0

    async def loop(ws: object) -> None:
        nonlocal count
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            await ws.send("hello")  # type: ignore[attr-defined]
            await ws.recv()  # type: ignore[attr-defined]
            count += 1

    await asyncio.gather(*(loop(ws) for ws in clients[:1]))  # warm-up
    count = 0
    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(loop(ws) for ws in clients))
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    for ws in clients:
        await ws.close()
    return count / elapsed, cpu / (2 * count) * 1e6  # a round trip is 2 messages


async def broadcast(port: int, messages: int, pid: int) -> tuple[float, float]:
    receivers = [await connect(f"ws://127.0.0.1:{port}/room", max_queue=None) for _ in range(64)]
    sender = receivers[0]
    await asyncio.sleep(0.3)

    async def drain(ws: object) -> None:
        for _ in range(messages):
            await ws.recv()  # type: ignore[attr-defined]

    cpu0, t0 = cpu_seconds(pid), time.monotonic()
    readers = asyncio.gather(*(drain(ws) for ws in receivers))
    for i in range(messages):
        await sender.send(f"m{i}")
    await asyncio.wait_for(readers, 120)
    elapsed, cpu = time.monotonic() - t0, cpu_seconds(pid) - cpu0
    for ws in receivers:
        await ws.close()
    deliveries = messages * len(receivers)
    return deliveries / elapsed, cpu / deliveries * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--messages", type=int, default=200)  # under INBOX_SIZE: sent at once
    parser.add_argument("--broadcasts", type=int, default=5, help="broadcast runs per server start")
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {
        m: {"echo": [], "echo_cpu": [], "bc": [], "bc_cpu": []} for m in ("off", "on")
    }
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "cost_app.py").write_text(APP)
        (directory / "cost_off.py").write_text(SETTINGS % "False")
        (directory / "cost_on.py").write_text(SETTINGS % "True")
        for _ in range(args.rounds):
            for mode in ("off", "on"):
                proc, port = start(directory, mode == "on")
                try:
                    rate, cpu = await echo(port, args.seconds, proc.pid)
                    results[mode]["echo"].append(rate)
                    results[mode]["echo_cpu"].append(cpu)
                    for _ in range(args.broadcasts):
                        rate, cpu = await broadcast(port, args.messages, proc.pid)
                        results[mode]["bc"].append(rate)
                        results[mode]["bc_cpu"].append(cpu)
                finally:
                    proc.terminate()
                    proc.wait(10)
    med = {m: {k: statistics.median(v) for k, v in r.items()} for m, r in results.items()}
    for key, label, unit in (
        ("echo", "echo round trips/s", ""),
        ("echo_cpu", "echo server CPU µs per message", ""),
        ("bc", "broadcast deliveries/s", ""),
        ("bc_cpu", "broadcast server CPU µs per delivery", ""),
    ):
        off, on = med["off"][key], med["on"][key]
        print(f"{label:<46} off {off:10.2f}   on {on:10.2f}   {(on - off) / off * 100:+.1f}%{unit}")


if __name__ == "__main__":
    asyncio.run(main())
