"""Topics with history end to end: the Python client on real daphne processes and real Redis.

A SIGKILLed process's clients reconnect to the survivor and rejoin with their last position:
every client ends with 1..N once, in order. Redis losing its data gives a resync, not a wrong
replay. Bad positions in join frames get a resync and never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ravyn_channels.client import Socket
from ravyn_channels.topics import PROTOCOL

from .conftest import REDIS_URL, ROOT, Server, StartServer, free_port
from .test_history import cleanup, cluster, start_redis  # noqa: F401  (fixture, helpers)

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.integration.apps.topics_history:app"
#: Messages of the SIGKILL test (the issue's 10,000: RAVYN_TEST_RESUME_COUNT=10000).
COUNT = int(os.environ.get("RAVYN_TEST_RESUME_COUNT", "2000"))


def topics_cluster(tmp_path: Path, start_server: StartServer, url: str) -> tuple[Server, Server, str]:
    from .conftest import write_redis_settings

    prefix = write_redis_settings(tmp_path, url, pubsub=True)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    a = start_server(APP, settings="redis_settings", env=env)
    b = start_server(APP, settings="redis_settings", env=env)
    return a, b, prefix


class Reader:
    """A client socket on one topic that records every pushed number and every resync."""

    def __init__(self, url: str, topic: str, backoff: float = 0.1) -> None:
        self.socket = Socket(url, backoff=lambda attempt: backoff, timeout=10)
        self.channel = self.socket.channel(topic)
        self.numbers: list[int] = []
        self.positions: list[str] = []
        self.resyncs: list[tuple[dict[str, Any], str | None]] = []
        self.events: list[tuple[str, Any]] = []
        #: Pushes received on a reconnection before its rejoin's reply: the replay.
        self.replayed = 0
        self.got = asyncio.Event()
        self.channel.on("message", self._message)
        self.channel.on("resync", lambda payload: self._resync(payload))

    def _message(self, payload: Any) -> None:
        self.numbers.append(payload["n"])
        if self.socket.connections > 1 and self.channel.joins < self.socket.connections:
            self.replayed += 1
        self.positions.append(str(self.channel.position))
        self.events.append(("message", self.channel.position))
        self.got.set()

    def _resync(self, payload: Any) -> None:
        self.resyncs.append((payload, self.channel.position))
        self.events.append(("resync", self.channel.position))
        self.got.set()

    async def start(self, position: str | None = None) -> Any:
        await self.socket.connect()
        return await self.channel.join(position=position)

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.numbers) < count and time.monotonic() < deadline:
            self.got.clear()
            try:
                await asyncio.wait_for(self.got.wait(), max(0.05, deadline - time.monotonic()))
            except TimeoutError:
                break


async def until(condition: Any, timeout: float) -> None:
    """Return once ``condition()`` holds (a reply read, a log line written), or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:  # noqa: ASYNC110  (client state, no event to wait on)
        await asyncio.sleep(0.02)


def first_difference(got: list[int], expected: list[int]) -> str:
    index = next(
        (i for i, (x, y) in enumerate(zip(got, expected, strict=False)) if x != y), min(len(got), len(expected))
    )
    return f"{len(got)} numbers, first difference at index {index}: {got[max(0, index - 2) : index + 3]}"


async def test_clients_of_a_sigkilled_process_rejoin_the_survivor_with_every_push_once_in_order(
    redis_ready: None,
    tmp_path: Path,
    start_server: StartServer,
    cleanup: Any,  # noqa: F811
) -> None:
    a, b, prefix = topics_cluster(tmp_path, start_server, REDIS_URL)
    cleanup.append((REDIS_URL, prefix))
    topic = "room:crash"
    # A's clients wait 1 s before reconnecting: the sender's next burst is sent meanwhile.
    on_a = [Reader(f"{a.ws}/live", topic, backoff=1.0) for _ in range(2)]
    on_b = [Reader(f"{b.ws}/live", topic) for _ in range(2)]
    sender = Reader(f"{b.ws}/live", topic)
    try:
        for reader in [*on_a, *on_b, sender]:
            await reader.start()
        step = 100
        for first in range(1, COUNT + 1, step):
            await sender.channel.push("burst", {"first": first, "last": min(COUNT, first + step - 1)})
            if first <= COUNT // 2 < first + step:
                # A's clients will find B at the same address a load balancer would give them.
                for reader in on_a:
                    reader.socket.url = f"{b.ws}/live"
                a.proc.send_signal(signal.SIGKILL)
                a.proc.wait(5)
        expected = list(range(1, COUNT + 1))
        for reader in [*on_a, *on_b, sender]:
            await reader.wait_for(COUNT, 20)
        for i, reader in enumerate([*on_a, *on_b, sender]):
            assert reader.resyncs == [], (i, reader.resyncs)
            assert reader.numbers == expected, (i, first_difference(reader.numbers, expected))
            offsets = [int(p.partition(":")[2]) for p in reader.positions]
            assert offsets == sorted(set(offsets)), i
        for reader in on_a:
            # The replay comes before the rejoin's reply: every number may be in before the reply is.
            await until(lambda r=reader: r.channel.joins >= 2, 10)
            assert reader.socket.connections == 2 and reader.channel.joins == 2
            assert reader.replayed > 0  # missed while away, received from the history on rejoin
        assert "Traceback" not in b.log()
    finally:
        for reader in [*on_a, *on_b, sender]:
            await reader.socket.close()


async def test_redis_losing_the_history_gives_topic_clients_a_resync_not_a_wrong_replay(
    redis_ready: None, tmp_path: Path, start_server: StartServer
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(port, tmp_path)
    topic = "room:lost"
    readers: list[Reader] = []
    try:
        a, b, _ = topics_cluster(tmp_path, start_server, url)
        live_a, live_b = Reader(f"{a.ws}/live", topic), Reader(f"{b.ws}/live", topic)
        away = Reader(f"{b.ws}/live", topic)
        readers += [live_a, live_b, away]
        for reader in readers:
            await reader.start()
        await live_a.channel.push("burst", {"first": 1, "last": 50})
        for reader in readers:
            await reader.wait_for(50, 10)
            assert reader.numbers == list(range(1, 51))
        kept = away.channel.position
        assert kept is not None and kept.endswith(":50")
        old_epoch = kept.partition(":")[0]
        await away.socket.close()
        redis_proc.send_signal(signal.SIGKILL)
        redis_proc.wait(5)
        redis_proc = start_redis(port, tmp_path)  # empty: the history is gone
        # Keep sending until both live clients heard of the new history (the layer reconnects first).
        deadline = time.monotonic() + 40
        n = 100
        while time.monotonic() < deadline and not (live_a.resyncs and live_b.resyncs and live_b.numbers[-1] > 100):
            try:
                await live_a.channel.push("say", {"n": n}, timeout=5)
            except Exception:
                await asyncio.sleep(0.1)  # "unavailable" while Redis restarts, or the socket reconnecting
            n += 1
            await asyncio.sleep(0.05)
        for reader in (live_a, live_b):
            assert reader.resyncs, reader.events[-5:]
            payload, position = reader.resyncs[0]
            assert payload == {"reason": "epoch"}
            assert position is not None and not position.startswith(old_epoch + ":")
            after = reader.events[reader.events.index(("resync", position)) + 1 :]
            # After the resync only the new history's messages, in order; nothing of the old one replayed.
            offsets = [int(str(p).partition(":")[2]) for kind, p in after if kind == "message"]
            assert offsets and offsets == sorted(set(offsets))
            assert all(not str(p).startswith(old_epoch + ":") for _, p in after)
        # A client coming back with a position of the lost history is told to resync.
        back = Reader(f"{b.ws}/live", topic)
        readers.append(back)
        await back.start(position=kept)
        assert [payload for payload, _ in back.resyncs] == [{"reason": "epoch"}]
        assert back.numbers == [] and not str(back.channel.position).startswith(old_epoch + ":")
        ours = [t[:3000] for t in (a.log() + b.log()).split("Traceback")[1:] if "/ravyn_channels/" in t[:3000]]
        assert ours == []
    finally:
        for reader in readers:
            await reader.socket.close()
        redis_proc.kill()
        redis_proc.wait(5)


async def raw_join(ws: Any, topic: str, ref: int, position: Any, with_position: bool = True) -> list[dict[str, Any]]:
    """Send a join frame with ``position``; the frames received up to its reply."""
    frame: dict[str, Any] = {"topic": topic, "event": "join", "payload": {}, "ref": str(ref)}
    if with_position:
        frame["position"] = position
    await ws.send(json.dumps(frame))
    frames = []
    while True:
        got = json.loads(await asyncio.wait_for(ws.recv(), 5))
        frames.append(got)
        if got["event"] == "reply" and got.get("ref") == str(ref):
            return frames


async def test_bad_positions_in_join_frames_get_a_resync_and_never_a_traceback(
    redis_ready: None,
    tmp_path: Path,
    start_server: StartServer,
    ws_connect: Any,
    cleanup: Any,  # noqa: F811
) -> None:
    a, _, prefix = topics_cluster(tmp_path, start_server, REDIS_URL)
    cleanup.append((REDIS_URL, prefix))
    async with ws_connect(f"{a.ws}/live", subprotocols=[PROTOCOL]) as ws:
        other = (await raw_join(ws, "room:other", 1, None, with_position=False))[-1]["position"]
        head = ""
        await ws.send(json.dumps({"topic": "small:bad", "event": "join", "payload": {}, "ref": "2"}))
        await ws.send(
            json.dumps({"topic": "small:bad", "event": "burst", "payload": {"first": 1, "last": 9}, "ref": "3"})
        )
        while True:
            got = json.loads(await asyncio.wait_for(ws.recv(), 5))
            if got["event"] == "message":
                head = got["position"]
            if got["event"] == "reply" and got["ref"] == "3":
                break
        assert head.endswith(":9")
    epoch = head.partition(":")[0]
    bad: list[tuple[Any, str]] = [
        ("garbage", "malformed"),
        (12, "malformed"),
        ({"epoch": epoch}, "malformed"),
        ([epoch, 3], "malformed"),
        ("x" * 5000 + ":1", "malformed"),
        (f"{epoch}:-1", "malformed"),
        (f"{epoch}:99999999999999999999999", "malformed"),
        (f"{epoch}:{10**9}", "future"),
        (other, "epoch"),  # another topic's position
        ("ffffffffffffffff:3", "epoch"),
        (f"{epoch}:1", "expired"),  # 5 kept: 5..9; after 1 the 2..4 are gone
    ]
    async with ws_connect(f"{a.ws}/live", subprotocols=[PROTOCOL]) as ws:
        for ref, (position, reason) in enumerate(bad, start=10):
            frames = await raw_join(ws, "small:bad", ref, position)
            assert frames[0]["event"] == "resync" and frames[0]["payload"] == {"reason": reason}, (position, frames)
            # After the resync the on_join newest messages (8, 9), then the reply at the head.
            assert [f["payload"]["n"] for f in frames if f["event"] == "message"] == [8, 9], position
            assert frames[-1]["payload"]["status"] == "ok" and frames[-1]["position"] == head
            await ws.send(json.dumps({"topic": "small:bad", "event": "leave", "ref": f"l{ref}"}))
            while json.loads(await asyncio.wait_for(ws.recv(), 5)).get("ref") != f"l{ref}":
                pass
        # Within the history: a replay of exactly what follows, no resync.
        frames = await raw_join(ws, "small:bad", 99, f"{epoch}:6")
        assert [(f["event"], f.get("position")) for f in frames[:-1]] == [
            ("message", f"{epoch}:7"),
            ("message", f"{epoch}:8"),
            ("message", f"{epoch}:9"),
        ]
        # A topic without history ignores a position and its frames carry none.
        frames = await raw_join(ws, "plain:x", 100, "garbage")
        assert frames == [frames[-1]] and "position" not in frames[-1] and frames[-1]["payload"]["status"] == "ok"
    assert "Traceback" not in a.log() and "ERROR" not in a.log()


async def test_a_rejoin_while_the_history_store_is_down_is_retried_until_it_is_back(
    redis_ready: None, tmp_path: Path, start_server: StartServer
) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(port, tmp_path)
    topic = "room:retry"
    reader: Reader | None = None
    try:
        a, _, _ = topics_cluster(tmp_path, start_server, url)
        reader = Reader(f"{a.ws}/live", topic, backoff=0.2)
        await reader.start()
        await reader.channel.push("say", {"n": 1})
        await reader.wait_for(1, 10)
        redis_proc.send_signal(signal.SIGKILL)
        redis_proc.wait(5)
        # The connection drops (as a network change would): the rejoin finds the store down.
        assert reader.socket._ws is not None
        await reader.socket._ws.close(4000, "test: drop")
        await until(lambda: "history unavailable" in a.log(), 20)
        assert "history unavailable" in a.log(), a.log()[-2000:]
        redis_proc = start_redis(port, tmp_path)  # back, empty
        await until(lambda: reader.channel.state == "joined" and reader.channel.joins == 2, 30)
        assert (reader.channel.state, reader.channel.joins) == ("joined", 2), reader.events[-5:]
        assert [payload for payload, _ in reader.resyncs] == [{"reason": "epoch"}]  # the history was lost
        await reader.channel.push("say", {"n": 2})
        await reader.wait_for(2, 10)
        assert reader.numbers == [1, 2]
    finally:
        if reader is not None:
            await reader.socket.close()
        redis_proc.kill()
        redis_proc.wait(5)
