"""Room history on real daphne processes and real Redis: resume across a crash, Redis restarts, order, bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from websockets.exceptions import ConnectionClosed

from ravyn_channels.history.redis_store import RedisHistory
from ravyn_channels.history.store import Limits

from .conftest import REDIS_URL, ROOT, Server, StartServer, free_port, write_redis_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.integration.apps.history:app"


def _redis(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url)


@pytest.fixture
def cleanup() -> Iterator[list[tuple[str, str]]]:
    """(redis url, prefix) pairs whose keys are deleted after the test."""
    used: list[tuple[str, str]] = []
    yield used
    for url, prefix in used:
        try:
            client = _redis(url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        except Exception:
            pass


def cluster(tmp_path: Path, start_server: StartServer, url: str, pubsub: bool = False) -> tuple[Server, Server, str]:
    prefix = write_redis_settings(tmp_path, url, pubsub)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    a = start_server(APP, settings="redis_settings", env=env)
    b = start_server(APP, settings="redis_settings", env=env)
    return a, b, prefix


class Client:
    """A websocket client that keeps what it receives and reconnects with its last position."""

    def __init__(self, ws_connect: Any, room: str) -> None:
        self.ws_connect = ws_connect
        self.room = room
        self.data: list[str] = []
        self.positions: list[tuple[str, int]] = []
        self.resyncs: list[dict[str, Any]] = []
        self.frames: list[dict[str, Any]] = []
        self.reconnects = 0

    @property
    def position(self) -> str | None:
        return None if not self.positions else f"{self.positions[-1][0]}:{self.positions[-1][1]}"

    async def run(self, servers: list[Server], until: int, deadline: float) -> None:
        index = 0
        while time.monotonic() < deadline and len(self.data) < until:
            server = servers[index % len(servers)]
            since = "" if self.position is None else f"?since={self.position}"
            try:
                async with self.ws_connect(f"{server.ws}/history/{self.room}{since}") as ws:
                    self.reconnects += 1
                    while len(self.data) < until:
                        frame = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
                        self.take(frame)
            except (TimeoutError, ConnectionClosed, OSError):
                index += 1
                await asyncio.sleep(0.05)

    def take(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if frame["type"] == "resync":
            self.resyncs.append(frame)
            epoch, _, offset = frame["position"].partition(":")
            self.positions.append((epoch, int(offset)))
        elif frame["type"] == "message":
            epoch, _, offset = frame["position"].partition(":")
            self.positions.append((epoch, int(offset)))
            self.data.append(frame["data"])


async def wait_joined(ws_connect: Any, server: Server, room: str) -> str:
    """The room's head position, read through ``server`` (its history exists from then on)."""
    async with ws_connect(f"{server.ws}/history/{room}") as ws:
        await ws.send("pos")
        frame = json.loads(await ws.recv())
        return str(frame["position"])


async def test_clients_resume_on_the_survivor_of_a_sigkill_with_every_message_once_in_order(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, cleanup: Any
) -> None:
    a, b, prefix = cluster(tmp_path, start_server, REDIS_URL, pubsub=True)
    cleanup.append((REDIS_URL, prefix))
    total = 10_000
    deadline = time.monotonic() + 80
    clients = [Client(ws_connect, "crash") for _ in range(2)]
    await wait_joined(ws_connect, b, "crash")
    # One client starts on A (the process killed), one on B; both fall back to B.
    runs = [asyncio.ensure_future(c.run([a, b] if i == 0 else [b], total, deadline)) for i, c in enumerate(clients)]
    await asyncio.sleep(0.5)
    async with ws_connect(f"{b.ws}/history/crash") as sender:
        own = Client(ws_connect, "crash")
        for start in range(1, total + 1, 100):
            await sender.send(f"burst:{start}:{start + 99}")
            while len(own.data) < start + 99:
                own.take(json.loads(await asyncio.wait_for(sender.recv(), 10)))
            if start == 3001:
                a.proc.send_signal(signal.SIGKILL)
                a.proc.wait(5)
    await asyncio.wait_for(asyncio.gather(*runs), max(1.0, deadline - time.monotonic() + 5))
    expected = [str(i) for i in range(1, total + 1)]
    for i, client in enumerate(clients):
        assert client.resyncs == []
        assert client.data == expected, f"client {i}: {len(client.data)} messages, first wrong at " + str(
            next((j for j, (x, y) in enumerate(zip(client.data, expected, strict=False)) if x != y), None)
        )
        offsets = [offset for _, offset in client.positions]
        assert offsets == sorted(set(offsets))
    assert clients[0].reconnects >= 2
    assert "Traceback" not in b.log()


def start_redis(port: int, tmp_path: Path) -> Any:
    import subprocess

    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            _redis(f"redis://127.0.0.1:{port}/0").ping()
            return proc
        except Exception:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


async def test_redis_losing_its_data_gives_a_resync_not_a_wrong_replay(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(port, tmp_path)
    try:
        a, b, _ = cluster(tmp_path, start_server, url)
        before = await wait_joined(ws_connect, a, "lost")
        old_epoch = before.partition(":")[0]
        on_a, on_b = Client(ws_connect, "lost"), Client(ws_connect, "lost")
        async with ws_connect(f"{a.ws}/history/lost") as wa, ws_connect(f"{b.ws}/history/lost") as wb:
            await asyncio.sleep(0.3)
            await wa.send("burst:1:50")
            for client, ws in ((on_a, wa), (on_b, wb)):
                while len(client.data) < 50:
                    client.take(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            kept = on_a.position
            redis_proc.send_signal(signal.SIGKILL)
            redis_proc.wait(5)
            await asyncio.sleep(0.5)
            redis_proc = start_redis(port, tmp_path)  # empty: the history is gone
            # Keep sending until both clients heard of the new history (the layer reconnects first).
            deadline = time.monotonic() + 40
            n = 100
            while time.monotonic() < deadline and not (on_a.resyncs and on_b.resyncs and len(on_b.data) > 52):
                await wa.send(f"say:{n}")
                n += 1
                for client, ws in ((on_a, wa), (on_b, wb)):
                    try:
                        while True:
                            frame = json.loads(await asyncio.wait_for(ws.recv(), 0.2))
                            if frame["type"] != "unavailable":
                                client.take(frame)
                    except TimeoutError:
                        pass
        for client in (on_a, on_b):
            assert client.resyncs, client.frames[-5:]
            resync = client.resyncs[0]
            assert resync["reason"] == "epoch" and not resync["position"].startswith(old_epoch + ":")
            after = client.frames[client.frames.index(resync) + 1 :]
            # After the resync only the new history's messages, in order; nothing of the old one replayed.
            new_offsets = [int(f["position"].partition(":")[2]) for f in after if f["type"] == "message"]
            assert new_offsets == sorted(set(new_offsets)) and new_offsets
            assert all(not f["position"].startswith(old_epoch + ":") for f in after)
        # A client coming back with a position of the lost history is told to resync.
        async with ws_connect(f"{b.ws}/history/lost?since={kept}") as late:
            frame = json.loads(await asyncio.wait_for(late.recv(), 5))
            assert frame["type"] == "resync" and frame["reason"] == "epoch"
        # channels-redis's own background task may log the connection reset when Redis dies;
        # no traceback may come from ravyn_channels.
        ours = [t[:3000] for t in (a.log() + b.log()).split("Traceback")[1:] if "/ravyn_channels/" in t[:3000]]
        assert ours == []
    finally:
        redis_proc.kill()
        redis_proc.wait(5)


async def test_many_senders_on_two_processes_one_order_for_everyone(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, cleanup: Any
) -> None:
    a, b, prefix = cluster(tmp_path, start_server, REDIS_URL)
    cleanup.append((REDIS_URL, prefix))
    await wait_joined(ws_connect, a, "order")
    per_sender, senders = 300, 6
    total = per_sender * senders
    deadline = time.monotonic() + 45
    clients = [Client(ws_connect, "order") for _ in range(4)]
    runs = [asyncio.ensure_future(c.run([a if i % 2 else b], total, deadline)) for i, c in enumerate(clients)]
    await asyncio.sleep(0.5)

    done = asyncio.Event()

    async def send(server: Server, tag: str) -> None:
        async with ws_connect(f"{server.ws}/history/order", max_queue=None) as ws:
            for start in range(1, per_sender + 1, 50):
                await ws.send(f"burst:{start}:{start + 49}:{tag}-")
                await asyncio.sleep(0.01)
            await done.wait()  # a handler is cancelled soon after its client leaves: stay

    sending = asyncio.ensure_future(asyncio.gather(*(send(a if i % 2 else b, f"s{i}") for i in range(senders))))
    try:
        await asyncio.wait_for(asyncio.gather(*runs), max(1.0, deadline - time.monotonic() + 5))
    finally:
        done.set()
        await sending
    first = clients[0]
    assert len(first.data) == total and len(set(first.data)) == total
    for client in clients:
        assert client.data == first.data
        offsets = [offset for _, offset in client.positions]
        assert offsets == list(range(offsets[0], offsets[0] + total))
    for i in range(senders):
        mine = [int(d.split("-")[1]) for d in first.data if d.startswith(f"s{i}-")]
        assert mine == list(range(1, per_sender + 1))


BAD = [
    "",  # no position: a plain join
    "garbage",
    "ffffffffffffffff:1",
    ":",
    "1:",
    "a:-1",
    "a:1.5",
    "a:99999999999999999999999",
    "é:1",
    "x" * 2000 + ":1",
    "%00:1",
    "a:1:2",
    "{head_epoch}:{future}",
    "{other}",
    "{head_epoch}:0",
]


async def test_bad_positions_get_a_resync_and_never_a_traceback(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, cleanup: Any
) -> None:
    a, _, prefix = cluster(tmp_path, start_server, REDIS_URL)
    cleanup.append((REDIS_URL, prefix))
    other = await wait_joined(ws_connect, a, "other")
    async with ws_connect(f"{a.ws}/history/other") as ws:
        await ws.send("say:x")
        other = json.loads(await ws.recv())["position"]
    async with ws_connect(f"{a.ws}/history/bad") as ws:
        await ws.send("burst:1:3")
        frames = [json.loads(await ws.recv()) for _ in range(3)]
    head = frames[-1]["position"]
    head_epoch = head.partition(":")[0]
    for raw in BAD:
        since = raw.format(head_epoch=head_epoch, future=10**6, other=other)
        async with ws_connect(f"{a.ws}/history/bad?since={quote(since)}") as ws:
            await ws.send("say:probe")
            frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if raw == "":
                assert frame["type"] == "message" and frame["data"] == "probe", (raw, frame)
                continue
            if raw == "{head_epoch}:0":
                # Still within the history (3 + probes kept): a replay from the first message.
                assert frame["type"] == "message" and frame["data"] == "1", (raw, frame)
                continue
            assert frame["type"] == "resync", (since[:40], frame)
            assert frame["reason"] in {"malformed", "epoch", "future", "expired"}
            following = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert following["data"] == "probe"
            assert int(following["position"].partition(":")[2]) == int(frame["position"].partition(":")[2]) + 1
    assert "Traceback" not in a.log()


async def test_redis_store_data_model(redis_ready: None, cleanup: Any) -> None:
    prefix = f"rc-test-hist-{os.getpid()}-{time.monotonic_ns()}"
    cleanup.append((REDIS_URL, prefix))
    store = RedisHistory([{"address": REDIS_URL}], prefix)
    try:
        limits = Limits(3, 60.0)
        entries = [await store.append("g", "text", f"m{i}", ("c#1",) if i == 0 else (), limits) for i in range(5)]
        assert [e.offset for e in entries] == [1, 2, 3, 4, 5] and len({e.epoch for e in entries}) == 1
        client = _redis(REDIS_URL)
        stream, meta = store.keys("g")
        assert client.xlen(stream) == 3 and client.hget(meta, "seq") == b"5"
        assert [r[0] for r in client.xrange(stream)] == [b"3-0", b"4-0", b"5-0"]
        assert 0 < client.pttl(stream) <= 60_000 and client.pttl(meta) > 60_000
        found = await store.read("g", 3, None, limits)
        assert (found.head, found.first, [e.data for e in found.entries]) == (5, 3, ["m3", "m4"])
        tail = await store.read("g", None, 2, limits)
        assert [e.offset for e in tail.entries] == [4, 5]
        await store.append("b", "bytes", b"\x00\xff", (), limits)
        assert (await store.read("b", 0, None, limits)).entries[0].data == b"\x00\xff"
        # Losing the keys (a Redis restart without persistence) starts a new epoch from offset 1.
        client.delete(stream, meta)
        again = await store.append("g", "text", "new", (), limits)
        assert again.epoch != entries[0].epoch and again.offset == 1
        # Age: entries older than max_age are not returned.
        short = Limits(100, 0.2)
        await store.append("aged", "text", "old", (), short)
        await asyncio.sleep(0.35)
        await store.append("aged", "text", "fresh", (), short)
        assert [e.data for e in (await store.read("aged", 0, None, short)).entries] == ["fresh"]
    finally:
        await store.aclose()
