"""Abrupt disconnects, handler bugs, hostile frames, and Redis restarts against real daphne."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from ravyn_channels.hub import MAINTENANCE_INTERVAL
from tests.conftest import Record
from tests.integration.conftest import REDIS_URL, Server, StartServer, free_port, write_redis_settings

from .rawws import close_frame, open_raw, reset

pytestmark = pytest.mark.integration

APP = "tests.reliability.apps:app"
ROOT = Path(__file__).resolve().parents[2]


async def stats(ws_connect: Any, server: Server) -> dict[str, int]:
    async with ws_connect(f"{server.ws}/stats") as ws:
        return dict(json.loads(await asyncio.wait_for(ws.recv(), 5)))


async def recv(ws: Any, timeout: float = 5) -> str:
    return str(await asyncio.wait_for(ws.recv(), timeout))


async def joined(*sockets: Any) -> None:
    """Wait until each /room/ socket's handler has joined its room (a ping answered after connect())."""
    for ws in sockets:
        await ws.send("ping")
        assert await recv(ws) == "pong"


def redis_settings(tmp_path: Path, url: str, pubsub: bool) -> tuple[dict[str, str], str]:
    prefix = write_redis_settings(tmp_path, url, pubsub)
    return {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}, prefix


async def one_cycle(port: int, path: str, abrupt: bool) -> None:
    sock = await asyncio.to_thread(open_raw, port, path)
    if abrupt:
        reset(sock)
    else:
        sock.sendall(close_frame())
        sock.close()


@pytest.mark.redis
async def test_ten_thousand_cycles_leave_no_tasks_memory_or_members(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, evidence: Record
) -> None:
    import redis

    env, prefix = redis_settings(tmp_path, REDIS_URL, pubsub=False)
    # One malloc arena per thread pool thread keeps freed memory that malloc_trim cannot return;
    # two arenas make RSS a measure of what is in use, not of how the allocator spread it.
    env["MALLOC_ARENA_MAX"] = "2"
    server = start_server(APP, settings="redis_settings", env=env)

    async def cycles(count: int) -> None:
        for batch in range(0, count, 50):
            await asyncio.gather(
                *(one_cycle(server.port, f"/room/r{(batch + i) % 13}", abrupt=(batch + i) % 2 == 1) for i in range(50))
            )

    # Warm-up: the first cycles take the allocator and the layer to their working size, and start
    # the process's layer reader (2 tasks). Measured with outboxes and remote-close tracking: RSS
    # +32 MiB over the first 10,000 cycles after 2,000, then -1 MiB over 10,000 more (objects flat
    # throughout), so the warm-up is 10,000 cycles.
    await cycles(10_000)
    before = await stats(ws_connect, server)
    started = time.monotonic()
    await cycles(10_000)
    elapsed = time.monotonic() - started
    # The last cycles' handlers end after their clients have gone: read until they have (bounded).
    deadline = time.monotonic() + 10
    after = await stats(ws_connect, server)
    while (after["local"] or after["tasks"] > before["tasks"]) and time.monotonic() < deadline:
        after = await stats(ws_connect, server)
    await asyncio.sleep(0.5)  # the stats socket's own group memberships (ravyn_channels.ops) are being left
    r = redis.Redis.from_url(REDIS_URL)
    members = {key: r.zcard(key) for key in r.scan_iter(f"{prefix}:group:*")}
    print(
        f"10000 cycles after warm-up (half TCP resets) in {elapsed:.1f}s: tasks {before['tasks']} -> {after['tasks']}, "
        f"objects {before['objects']} -> {after['objects']}, RSS {before['rss_kib']} -> {after['rss_kib']} KiB, "
        f"local members {after['local']}, Redis groups {members}"
    )
    evidence("10,000 cycles (half TCP resets): extra tasks", after["tasks"] - before["tasks"], "0")
    evidence("10,000 cycles: extra live objects", after["objects"] - before["objects"], "< 1000")
    evidence("10,000 cycles: RSS growth", (after["rss_kib"] - before["rss_kib"]) / 1024, "<= 24", "MiB")
    evidence("10,000 cycles: group members left in Redis", sum(members.values()), "0")
    assert after["tasks"] == before["tasks"]
    assert after["objects"] - before["objects"] < 1000
    assert after["local"] == 0
    assert members == {}
    # Leaks show in live objects (exact); RSS after malloc_trim still moves by about +-10 MiB
    # between rounds of 5,000 cycles with a flat object count (measured on CPython 3.13).
    assert after["rss_kib"] - before["rss_kib"] <= 24 * 1024
    assert "Traceback" not in server.log()


async def test_tcp_reset_is_seen_by_the_handler(start_server: StartServer, evidence: Record) -> None:
    server = start_server(APP)
    delays = []
    for i in range(20):
        sock = await asyncio.to_thread(open_raw, server.port, f"/gone/t{i}")
        sock.recv(64)  # "ready"
        at = time.time()
        reset(sock)
        log = await asyncio.to_thread(server.wait_for_log, f"gone t{i} ", 5)
        line = next(x for x in log.splitlines() if f"gone t{i} " in x)
        assert line.split()[2] == "1006"
        delays.append(float(line.split()[3]) - at)
    # Measured at loads 6-14 on 2 cores (11 runs): median 0.4-1.1 ms, max 2-36 ms. The median must
    # stay at milliseconds (half the resets delayed past 10 ms is not a scheduler stall but a poll);
    # no single one may take half a second (DISCONNECT_GRACE and daphne's poll are 1 s).
    median = statistics.median(delays)
    evidence("TCP reset -> WebSocketDisconnect(1006) in the handler: median of 20", median, "< 0.01 s", "s")
    evidence("TCP reset -> WebSocketDisconnect(1006) in the handler: max of 20", max(delays), "< 0.5 s", "s")
    assert median < 0.01, f"handlers learnt of TCP resets after {sorted(delays)} s"
    assert max(delays) < 0.5, f"a handler learnt of a TCP reset {max(delays):.2f}s after it"


async def test_handler_bug_closes_only_its_connection(start_server: StartServer, ws_connect: Any) -> None:
    server = start_server(APP)
    async with ws_connect(f"{server.ws}/echo") as bystander, ws_connect(f"{server.ws}/bug") as victim:
        await victim.send("go")
        with pytest.raises(ConnectionClosed):
            await recv(victim)
        assert victim.close_code == 1011
        await bystander.send("still fine")
        assert await recv(bystander) == "still fine"
    log = server.wait_for_log("bug on purpose")
    assert log.count("Traceback") == 1 and "bug raised; closing with 1011" in log


async def test_invalid_utf8_and_bad_frames_do_not_disturb_others(start_server: StartServer, ws_connect: Any) -> None:
    server = start_server(APP)
    async with ws_connect(f"{server.ws}/echo") as bystander:
        async with ws_connect(f"{server.ws}/echo") as hostile:
            await hostile.send(b"\xff\xfe", text=True)
            with pytest.raises(ConnectionClosed):
                await recv(hostile)
            assert hostile.close_code == 1007
        async with ws_connect(f"{server.ws}/echo") as binary:
            await binary.send(b"\x00")
            with pytest.raises(ConnectionClosed):
                await recv(binary)
            assert binary.close_code == 1003
        await bystander.send("ok")
        assert await recv(bystander) == "ok"
    assert "Traceback" not in server.log()


async def test_blocked_event_loop_is_reported_in_debug(start_server: StartServer, ws_connect: Any) -> None:
    server = start_server(APP, env={"APP_DEBUG": "1"})
    async with ws_connect(f"{server.ws}/block") as ws:
        await ws.send("block")
        assert await recv(ws, 10) == "done"
    log = server.wait_for_log("The event loop has been blocked for more than 1.0s")
    assert "in blocking_handler" in log and "time.sleep(2)" in log
    server.wait_for_log("The event loop ran again after")


def start_redis(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_connect_timeout=0.2).ping()
            return proc
        except Exception:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


@pytest.mark.redis
@pytest.mark.parametrize("pubsub", [False, True], ids=["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_redis_restart_recovers_without_restarting_daphne(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, pubsub: bool, evidence: Record
) -> None:
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    try:
        env, _ = redis_settings(tmp_path, f"redis://127.0.0.1:{port}/0", pubsub)
        a = start_server(APP, settings="redis_settings", env=env)
        b = start_server(APP, settings="redis_settings", env=env)
        async with ws_connect(f"{a.ws}/room/r") as on_a, ws_connect(f"{b.ws}/room/r") as on_b:
            await joined(on_a, on_b)
            await on_a.send("say:before")
            assert await recv(on_a) == "r: before" and await recv(on_b) == "r: before"

            redis_proc.send_signal(signal.SIGKILL)
            redis_proc.wait(5)
            # During the outage: the handler neither hangs nor dies; its own process still hears it,
            # and each broadcast call logs exactly one ERROR.
            outage_started = time.monotonic()
            for i in range(3):
                await on_a.send(f"say:during{i}")
                assert await recv(on_a, 10) == f"r: during{i}"
            during = time.monotonic() - outage_started
            failed = "Broadcast to 'r' reached this process only"
            await asyncio.to_thread(a.wait_for_log, failed, 5)
            await asyncio.sleep(1.0)  # the outage lasts a little longer (not a synchronisation)
            log_a = a.log()
            assert log_a.count(failed) == 3, log_a
            # (the layer's own reader logs its failures too; channels-redis adds its traceback)
            assert sum("ERROR" in x and "Broadcast" in x for x in log_a.splitlines()) == 3

            redis_proc = start_redis(port, tmp_path)
            back = time.monotonic()
            recovered = None
            for attempt in range(60):
                await on_a.send(f"say:probe{attempt}")
                try:
                    while True:
                        got = await recv(on_b, 0.25)
                        if got.startswith("r: probe"):
                            recovered = time.monotonic() - back
                            break
                except TimeoutError:
                    continue
                break
            assert recovered is not None, "cross-process broadcast did not recover within ~15 s"
            # Rooms are whole again in both directions.
            await on_b.send("say:from b after restart")
            deadline = time.monotonic() + 10
            while (await recv(on_a, 10)) != "r: from b after restart":
                assert time.monotonic() < deadline
        # The documented bound: the layer reader retries after at most 1 s this early in an outage
        # (0.5 s, doubling, up to 5 s), then the maintenance loop rejoins rooms every 2 s;
        # 0.5 s of slack for a loaded machine.
        bound = MAINTENANCE_INTERVAL + 1.0 + 0.5
        evidence("Redis down: 3 broadcast calls answered locally in", during, "", "s")
        evidence("Redis down: ERROR lines for 3 failed broadcast calls", 3, "3")
        evidence("Redis back: cross-process broadcast again after", recovered, f"<= {bound} s", "s")
        assert recovered <= bound, f"rooms whole again {recovered:.2f}s after Redis returned (bound {bound}s)"
    finally:
        redis_proc.kill()
        redis_proc.wait(5)
