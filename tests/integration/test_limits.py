"""Rate limits on real daphne processes: handshakes per IP counted in Redis across two processes,
and a flood of 10,000 frames/s from one client that is limited without memory growth or harm to others."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import ROOT, Server, StartServer, write_redis_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.integration.apps.limited:app"
LIMITS = """
RAVYN_CHANNELS = {
    "AUTODISCOVER": [],
    "TRUSTED_PROXIES": ["127.0.0.1"],
    "RATE_LIMITS": {"HANDSHAKES_PER_IP": "3/min"},
}
"""


def pair(tmp_path: Path, start_server: StartServer, count: int = 2) -> list[Server]:
    write_redis_settings(tmp_path)
    with open(tmp_path / "redis_settings.py", "a") as f:
        f.write(LIMITS)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    return [start_server(APP, settings="redis_settings", env=env) for _ in range(count)]


def rss_kib(server: Server) -> int:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def as_client(ip: str) -> dict[str, Any]:
    return {"additional_headers": {"X-Forwarded-For": ip}}


async def test_handshakes_per_ip_are_counted_across_processes(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    ip = f"198.51.100.{os.getpid() % 250}"
    for server in (a, b, a):  # three handshakes, on two processes: the limit is 3 per minute in all
        async with ws_connect(f"{server.ws}/echo", **as_client(ip)) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "hi"
    for server in (b, a):
        with pytest.raises(InvalidStatus) as info:
            async with ws_connect(f"{server.ws}/echo", **as_client(ip)):
                pass
        # HTTP 429 with the reason (daphne with the adapter sends denial responses).
        assert info.value.response.status_code == 429
        assert bytes(info.value.response.body) == b'{"detail":"over handshakes_per_ip = 3/60s"}'
    async with ws_connect(f"{b.ws}/echo", **as_client("192.0.2.77")) as ws:  # another client is not affected
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), 5) == "hi"
    b.wait_for_log("over handshakes_per_ip = 3/60s")
    for server in (a, b):  # one WARNING per client per window, not one per refusal
        assert server.log().count("Refusing websocket handshakes") <= 1


async def flood(ws: Any, seconds: float, per_second: int) -> int:
    """Send ``per_second`` small frames a second, in batches every 10 ms; returns how many were sent."""
    sent = 0
    batch = per_second // 100
    loop = asyncio.get_running_loop()
    start = loop.time()
    try:
        while loop.time() - start < seconds:
            for _ in range(batch):
                await ws.send("x" * 16)
                sent += 1
            await asyncio.sleep(max(0.0, start + sent / per_second - loop.time()))
    except ConnectionClosed:
        pass
    return sent


async def latencies(ws: Any, seconds: float) -> list[float]:
    """Round trips of a well-behaved client (5 messages a second, under its limit)."""
    loop = asyncio.get_running_loop()
    samples = []
    end = loop.time() + seconds
    i = 0
    while loop.time() < end:
        i += 1
        started = time.perf_counter()
        await ws.send(f"ping {i}")
        assert await asyncio.wait_for(ws.recv(), 5) == f"ping {i}"
        samples.append(time.perf_counter() - started)
        await asyncio.sleep(0.2)
    return samples


async def test_a_flood_of_10000_frames_per_second_is_limited(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    (server,) = pair(tmp_path, start_server, count=1)
    async with ws_connect(f"{server.ws}/echo", **as_client("192.0.2.1")) as calm:
        quiet = await latencies(calm, 2.0)  # baseline
        async with ws_connect(f"{server.ws}/echo", **as_client("192.0.2.2"), max_queue=None) as noisy:
            await asyncio.sleep(0.5)
            before = rss_kib(server)
            echoed_task = asyncio.ensure_future(drain_until_closed(noisy))
            sent, busy = await asyncio.gather(flood(noisy, 3.0, 10_000), latencies(calm, 3.0))
            after = rss_kib(server)
            await noisy.close()
            echoed = await echoed_task
    print(
        f"flood: {sent} frames in 3 s; {echoed} echoed (limit 100/s burst 200); server RSS {before} -> {after} KiB "
        f"(+{after - before}); calm client's round trip median {statistics.median(quiet) * 1000:.1f} ms before, "
        f"{statistics.median(busy) * 1000:.1f} ms during, max {max(busy) * 1000:.1f} ms"
    )
    assert sent >= 20_000  # the client really sent its flood (the server kept reading)
    assert echoed <= 200 + 100 * 4  # burst + rate over the flood and drain
    assert after - before < 4 * 1024  # a few MiB at most
    assert max(busy) < 1.0  # generous: the calm client is served throughout
    # One WARNING per client per window (the rate's period, 1 s), not one per dropped frame (~29,000).
    assert 1 <= server.log().count("over messages = 100/1s") <= 5


async def drain_until_closed(ws: Any) -> int:
    count = 0
    try:
        async for _ in ws:
            count += 1
    except ConnectionClosed:
        pass
    return count


async def test_close_policy_closes_the_flooder_with_1013(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    (server,) = pair(tmp_path, start_server, count=1)
    async with ws_connect(f"{server.ws}/strict", **as_client("192.0.2.3"), max_queue=None) as noisy:
        sent = await flood(noisy, 2.0, 10_000)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(noisy.recv(), 5)
    assert noisy.close_code == 1013 and noisy.close_reason == "rate limited"
    assert sent < 10_000  # closed well within the flood
    assert server.log().count("over messages = 100/1s") == 1
