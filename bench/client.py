"""The load generator: picows connections in one process, one workload, one JSON line out.

Run by the orchestrator as ``python -m bench.client '<json spec>'`` (pinned to
its own core). Every phase is bounded in time; every connection goes to
127.0.0.1. The result is printed as one JSON object on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psutil
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

HEADERS = {"Origin": "http://127.0.0.1"}  # every variant sees the same browser-like handshake
#: Seconds between a topic connection's heartbeats, as the official clients send them: the server
#: closes a topic socket that sent nothing for TOPICS_HEARTBEAT_TIMEOUT (60 s), and a fan-out
#: receiver sends nothing else.
HEARTBEAT = 30.0
#: Bytes a JSON string may hold as they are (printable ASCII but for the quote and the backslash).
PLAIN = re.compile(rb"[^\x20\x21\x23-\x5b\x5d-\x7e]")
HEARTBEAT_FRAME = b'{"topic":"ravyn","event":"heartbeat","payload":{},"ref":"hb"}'
now = time.perf_counter


class Conn(WSListener):
    """One client connection; ``on_text(conn, payload)`` is called for each text frame.

    A topic connection (``ravyn.topics.v1``, the ``topics`` variant) wraps what it
    sends in an event frame and hands ``on_text`` the payload of what it receives
    (a reply's response, a broadcast's payload), so every workload runs unchanged.
    """

    __slots__ = (
        "envelope", "event", "head", "index", "joined", "on_text", "reply", "seen", "sent_at", "tail", "topic",
        "transport", "with_ref",
    )  # fmt: skip

    def __init__(
        self, on_text: Callable[[Conn, bytes], None] | None = None, index: int = 0, topic: dict[str, str] | None = None
    ) -> None:
        self.transport: WSTransport | None = None
        self.on_text = on_text
        self.sent_at = 0.0
        self.index = index
        self.seen = False
        self.reply: asyncio.Future[None] | None = None
        self.topic = topic["topic"] if topic else None
        self.event = topic.get("event", "") if topic else ""
        self.with_ref = bool(topic and topic.get("ref"))
        self.joined: asyncio.Future[None] | None = None
        head = json.dumps({"topic": self.topic, "event": self.event, "payload": ""}, separators=(",", ":"))
        self.head = head.encode()[: -len('"}')]  # ... "payload":"
        self.tail = b'","ref":"1"}' if self.with_ref else b'"}'
        #: The last history envelope received (the ``history`` variant), as sent.
        self.envelope = b""

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            data = frame.get_payload_as_bytes()
            if self.topic is not None:
                if data.startswith(b'{"topic":"ravyn"'):  # a heartbeat's reply
                    return
                if b'"ref":"join"' in data:  # the join's reply (broadcasts may come before it)
                    if self.joined is not None and not self.joined.done():
                        self.joined.set_result(None)
                    return
                data = topic_payload(data)
            elif data[:9] == b'{"type":"':  # a room with history: the message is in an envelope
                self.envelope = data
                if data[9:17] != b'message"':
                    return  # a resync: nothing to deliver
                data = envelope_data(data)
            if self.on_text is not None:
                self.on_text(self, data)
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def beat(self) -> None:
        """Send a heartbeat every ``HEARTBEAT`` seconds while connected (topic connections)."""
        transport = self.transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            return
        transport.send(WSMsgType.TEXT, HEARTBEAT_FRAME)
        asyncio.get_running_loop().call_later(HEARTBEAT, self.beat)

    def send(self, payload: bytes) -> None:
        assert self.transport is not None
        if self.topic is not None:
            payload = self.wrap(payload)
        self.transport.send(WSMsgType.TEXT, payload)

    def wrap(self, payload: bytes) -> bytes:
        """The event frame carrying ``payload`` as a JSON string. The workloads' plain ASCII payloads
        go between the frame's two halves, made once (no JSON encoding per message: the other
        variants' clients encode nothing either); anything else is encoded."""
        if PLAIN.search(payload) is None:
            return self.head + payload + self.tail
        frame: dict[str, Any] = {"topic": self.topic, "event": self.event, "payload": payload.decode()}
        if self.with_ref:
            frame["ref"] = "1"
        return json.dumps(frame, separators=(",", ":")).encode()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def topic_payload(data: bytes) -> bytes:
    """The string payload of a topic frame (a reply's response, a push's payload), found without a
    full JSON decode, so the client's own cost stays close to the other variants' (the workloads
    send plain ASCII strings); anything else is decoded."""
    key = b'"response":"' if b'"event":"reply"' in data else b'"payload":"'
    start = data.find(key)
    end = data.find(b'"', start + len(key)) if start >= 0 else -1
    if end < 0:
        message = json.loads(data)
        value = message["payload"]["response"] if message.get("event") == "reply" else message.get("payload")
        return str(value).encode()
    return data[start + len(key) : end]


def envelope_data(data: bytes) -> bytes:
    """The string ``data`` of a history envelope, found without a full JSON decode (as ``topic_payload``)."""
    start = data.find(b',"data":"')
    end = data.find(b'"', start + 9) if start >= 0 else -1
    if end < 0:
        return str(json.loads(data).get("data")).encode()
    return data[start + 9 : end]


def topic_of(url: str) -> dict[str, str] | None:
    """``?topic=echo&event=echo&ref=1`` on a URL: connect as a topic client, join, send those events."""
    query = parse_qs(urlsplit(url).query)
    return {k: v[0] for k, v in query.items()} if "topic" in query else None


#: Failed connection attempts that were retried, by kind, in this client process (reported by the scale runs).
RETRIED: dict[str, int] = {}


async def open_conn(url: str, on_text: Callable[[Conn, bytes], None] | None, index: int = 0, tries: int = 3) -> Conn:
    topic = topic_of(url)
    headers = dict(HEADERS, **({"Sec-WebSocket-Protocol": "ravyn.topics.v1"} if topic else {}))
    for attempt in range(tries):
        try:
            _, listener = await ws_connect(
                lambda: Conn(on_text, index, topic), url, extra_headers=headers, websocket_handshake_timeout=10
            )
            if listener is None:  # the server closed it during the handshake (busy accepting thousands)
                raise ConnectionError(f"{url}: closed during the handshake")
            conn: Conn = listener  # type: ignore[assignment]
            if topic is not None:
                assert conn.transport is not None
                conn.joined = asyncio.get_running_loop().create_future()
                join = {"topic": topic["topic"], "event": "join", "payload": {}, "ref": "join"}
                conn.transport.send(WSMsgType.TEXT, json.dumps(join).encode())
                await asyncio.wait_for(conn.joined, 10)
                asyncio.get_running_loop().call_later(HEARTBEAT, conn.beat)
            return conn
        except Exception as exc:
            if attempt == tries - 1:
                raise
            kind = failure_kind(exc)
            RETRIED[kind] = RETRIED.get(kind, 0) + 1
            await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
    raise AssertionError("unreachable")


async def open_many(
    urls: list[str], n: int, on_text: Any, *, concurrency: int = 64, start: int = 0, tries: int = 3
) -> list[Conn]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Conn:
        async with gate:
            return await open_conn(urls[i % len(urls)], on_text, i, tries)

    opened = await asyncio.gather(*(one(i) for i in range(start, start + n)), return_exceptions=True)
    failed = [c for c in opened if isinstance(c, BaseException)]
    if failed:  # close what did open before saying why the rest did not
        await close_many([c for c in opened if isinstance(c, Conn)])
        raise failed[0]
    return opened  # type: ignore[return-value]


async def close_many(conns: list[Conn], timeout: float = 10.0) -> None:
    transports = [
        c.transport for c in conns if c is not None and c.transport is not None and not c.transport.is_disconnected
    ]
    for t in transports:
        if not t.is_close_frame_sent:
            t.send_close(WSCloseCode.OK)
    if transports:
        await asyncio.wait([asyncio.ensure_future(t.wait_disconnected()) for t in transports], timeout=timeout)
    for t in transports:
        if not t.is_disconnected:
            t.disconnect(graceful=False)


# -- workloads ----------------------------------------------------------------------------
#
# Each workload gets ``targets`` ({name: url or [urls]}) and measures them in
# interleaved slices (ABC CBA ABC ...), so that the load of a shared machine
# falls on every variant alike; a figure is the median over its slices.


def runq_wait(pids: list[int]) -> float:
    """Seconds the server processes' threads have been runnable but waiting for a core (Linux
    ``/proc/PID/task/TID/schedstat``; 0 elsewhere): a share near 1 minus the CPU share means
    the machine, not the server or this client, set the pace."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[1])
        except OSError:
            continue
    return total / 1e9


def cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) the server processes have used so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def slice_order(names: list[str], rounds: int) -> list[str]:
    order: list[str] = []
    for r in range(rounds):
        order += names if r % 2 == 0 else names[::-1]
    return order


async def echo(spec: dict[str, Any]) -> dict[str, Any]:
    """``conns`` connections per target, each sending a small text frame and waiting for its echo."""
    payload = b"x" * spec.get("size", 32)
    lat: list[float] = []
    state = {"recording": False, "running": False, "count": 0, "inflight": 0}
    drained = asyncio.Event()

    def on_text(conn: Conn, data: bytes) -> None:
        t = now()
        if state["recording"]:
            lat.append(t - conn.sent_at)
            state["count"] += 1
        if state["running"]:
            conn.sent_at = t
            conn.send(payload)
        else:
            state["inflight"] -= 1
            if state["inflight"] <= 0:
                drained.set()

    targets = spec["targets"]
    conns = {name: await open_many(t["urls"], spec["conns"], on_text) for name, t in targets.items()}
    rates: dict[str, list[float]] = {name: [] for name in targets}
    lats: dict[str, list[float]] = {name: [] for name in targets}
    used = {name: [0.0, 0.0, 0, 0.0, 0.0] for name in targets}  # cpu s, wall s, messages, client cpu s, run queue s
    for name in slice_order(list(targets), spec["rounds"]):
        pids = targets[name]["pids"]
        lat.clear()
        state.update(running=True, count=0, inflight=len(conns[name]))
        for c in conns[name]:
            c.sent_at = now()
            c.send(payload)
        await asyncio.sleep(spec["warmup"])
        state["recording"] = True
        t0, c0, k0, q0 = now(), cpu(pids), time.process_time(), runq_wait(pids)
        await asyncio.sleep(spec["slice"])
        state["recording"] = False
        wall, busy = now() - t0, cpu(pids) - c0
        used[name][3] += time.process_time() - k0
        used[name][4] += runq_wait(pids) - q0
        rates[name].append(state["count"] / wall)
        used[name][0] += busy
        used[name][1] += wall
        used[name][2] += state["count"]
        lats[name] += lat
        drained.clear()
        state["running"] = False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drained.wait(), 5)  # every connection's last echo is back
    for group in conns.values():
        await close_many(group)
    return {
        name: {
            "msgs_per_s": statistics.median(rates[name]),
            "p50_ms": percentile(lats[name], 50) * 1e3,
            "p99_ms": percentile(lats[name], 99) * 1e3,
            "cpu_us_per_msg": used[name][0] / max(1, used[name][2]) * 1e6,
            "server_cpu_share": used[name][0] / used[name][1],
            "client_cpu_share": used[name][3] / used[name][1],
            "server_runq_share": used[name][4] / used[name][1],
            "slices": [round(r) for r in rates[name]],
        }
        for name in targets
    }


async def handshake(spec: dict[str, Any]) -> dict[str, Any]:
    """``workers`` loops of: connect, one echo, close (until the server has hung up)."""
    loop = asyncio.get_running_loop()

    def on_text(conn: Conn, data: bytes) -> None:
        if conn.reply is not None and not conn.reply.done():
            conn.reply.set_result(None)

    async def one(url: str) -> None:
        conn = await open_conn(url, on_text)
        conn.reply = loop.create_future()
        conn.send(b"hello")
        await conn.reply
        assert conn.transport is not None
        conn.transport.send_close(WSCloseCode.OK)
        await conn.transport.wait_disconnected()

    async def worker(url: str, t0: float, t1: float, done: list[float], errors: list[str]) -> None:
        while now() < t1:
            t = now()
            try:
                await asyncio.wait_for(one(url), 10)
            except Exception as exc:  # counted and reported; the run goes on
                errors.append(repr(exc))
                await asyncio.sleep(0.05)
                continue
            if t >= t0 and now() <= t1:
                done.append(now() - t)

    targets = spec["targets"]
    rates: dict[str, list[float]] = {name: [] for name in targets}
    times: dict[str, list[float]] = {name: [] for name in targets}
    errors: dict[str, list[str]] = {name: [] for name in targets}
    used = {name: [0.0, 0.0, 0] for name in targets}  # cpu seconds, wall seconds, handshakes
    for name in slice_order(list(targets), spec["rounds"]):
        done: list[float] = []
        url = targets[name]["urls"][0]
        pids = targets[name]["pids"]
        t0 = now() + spec["warmup"]
        t1 = t0 + spec["slice"]
        c0 = cpu(pids)
        await asyncio.gather(*(worker(url, t0, t1, done, errors[name]) for _ in range(spec["workers"])))
        used[name][0] += cpu(pids) - c0
        used[name][1] += now() - t0 + spec["warmup"]
        used[name][2] += len(done)
        rates[name].append(len(done) / spec["slice"])
        times[name] += done
        await asyncio.sleep(0.2)
    return {
        name: {
            "handshakes_per_s": statistics.median(rates[name]),
            "p50_ms": percentile(times[name], 50) * 1e3,
            "p99_ms": percentile(times[name], 99) * 1e3,
            "cpu_ms_per_handshake": used[name][0] / max(1, used[name][2]) * 1e3,
            "server_cpu_share": used[name][0] / used[name][1],
            "errors": len(errors[name]),
            "first_error": errors[name][0] if errors[name] else None,
            "slices": [round(r) for r in rates[name]],
        }
        for name in targets
    }


def rss(pids: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pids)


async def settled_rss(pids: list[int], settle: float) -> int:
    await asyncio.sleep(settle)
    samples = []
    for _ in range(3):
        samples.append(rss(pids))
        await asyncio.sleep(0.2)
    return int(statistics.median(samples))


async def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Server RSS per idle connection: ``base`` connections, then ``conns`` more, per target.

    The targets are separate processes, so they are loaded side by side.
    """
    targets = spec["targets"]

    async def load(start: int, n: int) -> list[list[Conn]]:
        return list(await asyncio.gather(*(open_many(t["urls"], n, None, start=start) for t in targets.values())))

    base = await load(0, spec["base"])
    await asyncio.sleep(spec["settle"])
    rss0 = [await settled_rss(t["pids"], 0) for t in targets.values()]
    more = await load(spec["base"], spec["conns"])
    await asyncio.sleep(spec["settle"])
    rss1 = [await settled_rss(t["pids"], 0) for t in targets.values()]
    for conns in base + more:
        await close_many(conns)
    return {
        name: {
            "kib_per_conn": (after - before) / spec["conns"] / 1024,
            "rss_base_mib": before / 2**20,
            "rss_mib": after / 2**20,
        }
        for name, before, after in zip(targets, rss0, rss1, strict=True)
    }


class Room:
    """``n`` clients of one target in one room; client 0 triggers the broadcasts."""

    pad = b"." * 22

    def __init__(self, n: int) -> None:
        self.n = n
        self.remaining: dict[int, int] = {}
        self.finished: dict[int, asyncio.Future[float]] = {}
        self.seen = 0
        self.all_seen = asyncio.Event()
        self.conns: list[Conn] = []
        self.seq = 0

    def on_text(self, conn: Conn, data: bytes) -> None:
        if data[:1] == b"w":  # warm-up broadcast
            if not conn.seen:
                conn.seen = True
                self.seen += 1
                if self.seen == self.n:
                    self.all_seen.set()
            return
        seq = int(data[:10])
        left = self.remaining.get(seq)
        if left is None:
            return
        if left == 1:
            del self.remaining[seq]
            fut = self.finished.pop(seq)
            if not fut.done():
                fut.set_result(now())
        else:
            self.remaining[seq] = left - 1

    async def open(self, urls: list[str]) -> None:
        self.conns = await open_many(urls, self.n, self.on_text)

    async def warm(self, timeout: float = 60, every: float = 1.0) -> bool:
        """Broadcast until every client has had one (ravyn joins the room after accepting)."""
        deadline = now() + timeout
        while self.seen < self.n and now() < deadline:
            self.conns[0].send(b"w" + self.pad)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_seen.wait(), every)
        await asyncio.sleep(0.2)  # let late warm-up broadcasts arrive
        return self.seen == self.n

    async def broadcast(self, timeout: float = 10) -> float | None:
        """Send one broadcast; seconds until the last client had it (``None``: lost)."""
        self.seq += 1
        seq = self.seq
        fut = asyncio.get_running_loop().create_future()
        self.remaining[seq] = self.n
        self.finished[seq] = fut
        sent = now()
        self.conns[0].send(b"%010d" % seq + self.pad)
        try:
            done_at: float = await asyncio.wait_for(fut, timeout)
            return done_at - sent
        except TimeoutError:
            self.remaining.pop(seq, None)
            self.finished.pop(seq, None)
            return None


async def fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """Per target, ``clients`` in one room, in interleaved slices of two phases.

    Latency: one broadcast at a time, time until the last client has it.
    Throughput: ``window`` broadcasts in flight, completed broadcasts per second.
    """
    targets = spec["targets"]
    rooms = {name: Room(spec["clients"]) for name in targets}
    await asyncio.gather(*(rooms[name].open(target["urls"]) for name, target in targets.items()))
    warmed = await asyncio.gather(*(room.warm() for room in rooms.values()))
    failed: dict[str, dict[str, Any]] = {
        name: {"error": f"only {room.seen} of {room.n} clients got a warm-up broadcast in 60 s"}
        for (name, room), ok in zip(rooms.items(), warmed, strict=True)
        if not ok
    }
    targets = {name: t for name, t in targets.items() if name not in failed}
    lat: dict[str, list[float]] = {name: [] for name in targets}
    rates: dict[str, list[float]] = {name: [] for name in targets}
    lost = dict.fromkeys(targets, 0)
    used = {name: [0.0, 0.0, 0, 0.0, 0.0] for name in targets}  # cpu s, wall s, broadcasts, (unused), run queue s
    one = {name: [0.0, 0] for name in targets}  # the same, one broadcast at a time
    mine = dict.fromkeys(targets, 0.0)  # this client process's CPU seconds in the sustained phase
    for name in slice_order(list(targets), spec["rounds"]):
        room = rooms[name]
        samples: list[float] = []
        pids = targets[name]["pids"]
        t0, c0 = now(), cpu(pids)
        while now() - t0 < 4 * spec["slice"]:
            if len(samples) >= spec["min_samples"] and now() - t0 >= spec["slice"]:
                break
            took = await room.broadcast()
            if took is None:
                lost[name] += 1
                break
            samples.append(took)
        lat[name] += samples
        one[name][0] += cpu(pids) - c0
        one[name][1] += len(samples)

        # The phase lasts ``slice`` seconds, longer if needed to see ``min_samples`` broadcasts
        # complete (a slow variant), but never more than four slices.
        t0, c0, m0, q0 = now(), cpu(pids), time.process_time(), runq_wait(pids)
        done_at: list[float] = []
        end = [t0 + 4 * spec["slice"]]

        async def lane(room: Room, name: str, t0: float, done_at: list[float], end: list[float]) -> None:
            while now() < end[0]:
                took = await room.broadcast()
                if took is None:
                    lost[name] += 1
                    return
                done_at.append(now())
                if len(done_at) >= spec["min_samples"]:
                    end[0] = min(end[0], max(t0 + spec["slice"], done_at[spec["min_samples"] - 1]))

        await asyncio.gather(*(lane(room, name, t0, done_at, end) for _ in range(spec["window"])))
        used[name][0] += cpu(pids) - c0
        used[name][1] += now() - t0
        used[name][2] += len(done_at)
        mine[name] += time.process_time() - m0
        used[name][4] += runq_wait(pids) - q0
        rates[name].append(sum(1 for t in done_at if t <= end[0]) / (end[0] - t0))
    for room in rooms.values():
        await close_many(room.conns)
    return failed | {
        name: {
            "until_last_p50_ms": percentile(lat[name], 50) * 1e3,
            "until_last_p99_ms": percentile(lat[name], 99) * 1e3,
            "samples": len(lat[name]),
            "cpu_ms_per_broadcast_one": one[name][0] / max(1, one[name][1]) * 1e3,
            "broadcasts_per_s": statistics.median(rates[name]),
            "cpu_ms_per_broadcast": used[name][0] / max(1, used[name][2]) * 1e3,
            "server_cpu_share": used[name][0] / used[name][1],
            "client_cpu_share": mine[name] / used[name][1],
            "server_runq_share": used[name][4] / used[name][1],
            "slices": [round(r, 1) for r in rates[name]],
            "lost": lost[name],
        }
        for name in targets
    }


# -- scale workloads (``python -m bench --scale``) ------------------------------------------
#
# Larger counts, so the targets are measured one after the other (a client process
# holds one target's connections at a time), each phase bounded in time.


#: Attempts per connection while opening thousands: a handshake the server has not answered within
#: its timeout (it is busy accepting the others) is retried, counted in ``open_retried``.
SCALE_TRIES = 20


def redis_calls(url: str | None) -> dict[str, int]:
    """Calls per Redis command so far (``INFO commandstats``) on the run's private Redis."""
    if not url:
        return {}
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


def calls_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


class QuietRoom(Room):
    """A ``Room`` that knows when it last received anything."""

    def __init__(self, n: int) -> None:
        super().__init__(n)
        self.last = now()

    def on_text(self, conn: Conn, data: bytes) -> None:
        self.last = now()
        super().on_text(conn, data)

    async def quiet(self, idle: float = 2.0, limit: float = 120.0) -> None:
        """Wait until nothing has arrived for ``idle`` seconds: late warm-up broadcasts (a slow
        variant may have several queued) must not count in the first measured ones."""
        t0 = now()
        while now() - self.last < idle and now() - t0 < limit:  # noqa: ASYNC110  (polls a timestamp)
            await asyncio.sleep(0.25)


async def timed_broadcasts(room: Room, samples: int, limit: float) -> tuple[list[float], int]:
    """Up to ``samples`` broadcasts one at a time within ``limit`` seconds: until-last times, losses."""
    took: list[float] = []
    lost = 0
    t0 = now()
    while len(took) < samples and now() - t0 < limit:
        t = await room.broadcast(timeout=max(10.0, limit))
        if t is None:
            lost += 1
            break
        took.append(t)
    return took, lost


async def sustained(room: Room, window: int, seconds: float, limit: float = 30) -> tuple[float, int, int]:
    """``window`` broadcasts in flight for ``seconds``: completed broadcasts per second, losses, count.

    A broadcast not complete after ``limit`` seconds counts as lost (10,000 members of a slow variant,
    eight broadcasts queued: a broadcast can take tens of seconds)."""
    done = [0]
    lost = [0]
    t0 = now()
    end = t0 + seconds

    async def lane() -> None:
        while now() < end:
            if await room.broadcast(timeout=limit) is None:
                lost[0] += 1
                return
            done[0] += 1

    await asyncio.gather(*(lane() for _ in range(window)))
    return done[0] / (now() - t0), lost[0], done[0]


async def scale_room(spec: dict[str, Any]) -> dict[str, Any]:
    """Per target: ``clients`` connections in one room (RSS per connection), then broadcasts
    one at a time (until-last p50/p99) and ``window`` in flight (broadcasts/s); with ``redis``,
    the Redis commands the broadcasts cost."""
    out: dict[str, Any] = {}
    for name, target in spec["targets"].items():
        try:
            out[name] = await _scale_room(spec, target)
        except Exception as exc:  # this variant's failure; the next variant is still measured
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "open_retried": dict(RETRIED)}
        await asyncio.sleep(1.0)
    return out


async def _scale_room(spec: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    pids = target["pids"]
    rss0 = await settled_rss(pids, 0.5)
    room = QuietRoom(spec["clients"])
    t = now()
    RETRIED.clear()
    room.conns = await open_many(
        target["urls"], spec["clients"], room.on_text, concurrency=spec["concurrency"], tries=SCALE_TRIES
    )
    opened = now() - t
    rss1 = await settled_rss(pids, spec["settle"])
    result: dict[str, Any] = {
        "kib_per_conn": (rss1 - rss0) / spec["clients"] / 1024,
        "rss_mib": rss1 / 2**20,
        "open_s": opened,
        "open_retried": dict(RETRIED),
    }
    # Every member has joined (or is about to) once its handshake is done: one warm-up normally
    # reaches all; re-sent every 10 s only (a slow variant takes seconds per broadcast to 10,000:
    # re-sending every second would queue warm-ups ahead of the measured broadcasts).
    if not await room.warm(timeout=spec["limit"], every=10.0):
        missing = [c for c in room.conns if not c.seen]
        closed = sum(1 for c in missing if c.transport is None or c.transport.is_disconnected)
        result["error"] = (
            f"only {room.seen:,} of {room.n:,} clients got a warm-up broadcast within {spec['limit']} s "
            f"({closed} of the {len(missing)} others' connections closed)"
        )
    else:
        await room.quiet(limit=spec["limit"])
        calls0 = redis_calls(spec.get("redis"))
        took, lost = await timed_broadcasts(room, spec["samples"], spec["limit"])
        rate, lost2, done = await sustained(room, spec["window"], spec["slice"], spec["limit"])
        calls = calls_delta(calls0, redis_calls(spec.get("redis")))
        result.update(
            until_last_p50_ms=percentile(took, 50) * 1e3,
            until_last_p99_ms=percentile(took, 99) * 1e3,
            samples=len(took),
            broadcasts_per_s=rate,
            lost=lost + lost2,
        )
        if calls:
            result["redis_calls"] = calls
            result["broadcasts_counted"] = len(took) + done
    await close_many(room.conns, timeout=30)
    return result


async def scale_chat(spec: dict[str, Any]) -> dict[str, Any]:
    """Per target: ``rooms`` rooms of ``members``, spread over the target's processes; every room's
    first member sends, one message in flight per room, for ``slice`` seconds."""
    out: dict[str, Any] = {}
    for name, target in spec["targets"].items():
        out[name] = await _chat(spec, target)
        await asyncio.sleep(1.0)
    return out


async def _chat(spec: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    urls = target["urls"]  # each ends in /fanout/chat: room r is /fanout/chat<r>
    members = spec["members"]
    rooms = [QuietRoom(members) for _ in range(spec["rooms"])]
    gate = asyncio.Semaphore(spec["concurrency"])

    async def one(r: int, room: Room, i: int) -> Conn:
        async with gate:
            # member i of room r on process (r + i) mod n: every process hosts senders (member 0) and members
            return await open_conn(f"{urls[(r + i) % len(urls)]}{r}", room.on_text, i, SCALE_TRIES)

    async def join(r: int, room: Room) -> None:
        room.conns = list(await asyncio.gather(*(one(r, room, i) for i in range(members))))

    RETRIED.clear()
    t = now()
    await asyncio.gather(*(join(r, room) for r, room in enumerate(rooms)))
    opened = {"open_s": now() - t, "open_retried": dict(RETRIED)}
    try:
        # A warm-up broadcast every 5 s per room, 100 rooms at a time: 1,000 rooms re-sending
        # every second would queue more than a slow variant can deliver.
        warm_gate = asyncio.Semaphore(100)

        async def warm(room: Room) -> bool:
            async with warm_gate:
                return await room.warm(timeout=spec["limit"], every=5.0)

        warmed = await asyncio.gather(*(warm(room) for room in rooms))
        if not all(warmed):
            cold = [room for room, ok in zip(rooms, warmed, strict=True) if not ok]
            missing = sum(room.n - room.seen for room in cold)
            closed = sum(1 for room in cold for c in room.conns if c.transport is None or c.transport.is_disconnected)
            return opened | {
                "error": f"{len(cold)} rooms not warmed within {spec['limit']} s",
                "rooms_not_warmed": len(cold),
                "members_missing": missing,
                "connections_closed": closed,
            }
        await asyncio.gather(*(room.quiet(limit=spec["limit"]) for room in rooms))
        lat: list[float] = []
        lost = [0]
        t0, c0 = now(), cpu(target["pids"])
        end = t0 + spec["slice"]

        async def lane(room: Room) -> None:
            while now() < end:
                took = await room.broadcast(timeout=30)
                if took is None:
                    lost[0] += 1
                    return
                lat.append(took)

        await asyncio.gather(*(lane(room) for room in rooms))
        wall = now() - t0
        return opened | {
            "deliveries_per_s": len(lat) * members / wall,
            "messages_per_s": len(lat) / wall,
            "p50_ms": percentile(lat, 50) * 1e3,
            "p99_ms": percentile(lat, 99) * 1e3,
            "cpu_ms_per_message": (cpu(target["pids"]) - c0) / max(1, len(lat)) * 1e3,
            "lost": lost[0],
        }
    finally:
        for room in rooms:
            await close_many(room.conns, timeout=30)


def listen_counters() -> dict[str, int]:
    """The kernel's listen-queue counters (``/proc/net/netstat``): SYNs dropped because a listening
    socket's accept queue was full. Machine-wide (every process of this network namespace)."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], (int(v) for v in values.split()[1:]), strict=False))
            return {k: table[k] for k in ("ListenOverflows", "ListenDrops") if k in table}
    return {}


#: The storm's clients stop retrying this many times the plan's ``limit`` after the restart.
STORM_BOUND = 2


def retry_delay(failed: int) -> float:
    """Seconds before the next attempt after ``failed`` failures, as the project's JavaScript clients
    wait (``backoffDelay``: 0.5 s doubling to 30 s, half of it random)."""
    delay = min(30.0, 0.5 * 2.0 ** (failed - 1))
    return delay / 2 + random.random() * delay / 2


def failure_kind(exc: BaseException) -> str:
    """A short name for why a connection attempt failed (``ConnectionRefusedError``: nothing listens;
    ``HTTP 403``: the server refused the upgrade, e.g. daphne when its application did not accept
    within ``--websocket_connect_timeout``, 5 s by default)."""
    if isinstance(exc, TimeoutError):
        return "TimeoutError"
    status = getattr(getattr(exc, "response", None), "status", None)
    if status is not None:
        return f"HTTP {int(status)}"
    return type(exc).__name__


async def listening_after(pid: int, port: int, t0: float, limit: float) -> float | None:
    """Seconds from ``t0`` until process ``pid`` listens on ``port`` (``None``: not within ``limit``)."""
    while now() - t0 < limit:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            conns = []
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return now() - t0
        await asyncio.sleep(0.05)
    return None


async def scale_storm(spec: dict[str, Any]) -> dict[str, Any]:
    """``clients`` in rooms of ``members`` on one server; the server is restarted (SIGTERM, then the
    same command again); every client reconnects at once (retrying a failed attempt after 0.2 s);
    time until every room has everyone back (a broadcast in each room reaches all its members).

    Failed attempts are counted by kind (``ConnectionRefusedError``: the new process does not
    listen yet); the time the new process took to listen, the successful attempts' connect
    times and the kernel's listen-queue overflows say where the rest of the time went."""
    import os
    import signal
    import subprocess

    url = spec["url"]
    port = urlsplit(url).port or 80
    n, size = spec["clients"], spec["members"]
    rooms = [Room(size) for _ in range(n // size)]
    attempts = {"refused": 0, "tries": 0}
    failures: dict[str, int] = {}
    connect_times: list[float] = []
    deadline = [now() + STORM_BOUND * spec["limit"]]

    async def connect_room(r: int, room: Room, gate: asyncio.Semaphore) -> None:
        async def attempt(i: int) -> Conn:
            _, c = await ws_connect(
                lambda: Conn(room.on_text, i), f"{url}{r}", extra_headers=HEADERS, websocket_handshake_timeout=30
            )
            if c is None:
                raise ConnectionError("closed during the handshake")
            return c  # type: ignore[return-value]

        async def one(i: int) -> Conn | None:
            failed = 0
            while now() < deadline[0]:
                attempts["tries"] += 1
                t = now()
                try:
                    async with gate:  # the kernel retries a dropped SYN for ~2 min: bound each attempt
                        c = await asyncio.wait_for(attempt(i), max(0.1, min(60.0, deadline[0] - now())))
                    connect_times.append(now() - t)
                    return c
                except Exception as exc:
                    attempts["refused"] += 1
                    kind = failure_kind(exc)
                    failures[kind] = failures.get(kind, 0) + 1
                    failed += 1
                    await asyncio.sleep(retry_delay(failed) if spec.get("backoff") else 0.2)
            return None  # not back within the bound

        room.conns = list(await asyncio.gather(*(one(i) for i in range(size))))  # type: ignore[arg-type]

    def complete(room: Room) -> bool:
        return all(c is not None for c in room.conns)

    async def warm_all() -> list[bool]:
        return list(await asyncio.gather(*(room.warm(timeout=spec["limit"]) for room in rooms if complete(room))))

    gate = asyncio.Semaphore(spec["concurrency"])  # the first connections: a bounded ramp
    await asyncio.gather(*(connect_room(r, room, gate) for r, room in enumerate(rooms)))
    if not all(complete(room) for room in rooms) or not all(await warm_all()):
        for room in rooms:
            await close_many(room.conns, timeout=30)
        return {"error": f"the {n:,} clients did not all connect and join before the restart"}
    # Restart the server: the clients see their connections close.
    os.kill(spec["pid"], signal.SIGTERM)
    for _ in range(400):  # until it has exited (a zombie of the orchestrator counts as gone)
        try:
            if psutil.Process(spec["pid"]).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        await asyncio.sleep(0.05)
    for room in rooms:
        for c in room.conns:
            if c.transport is not None and not c.transport.is_disconnected:
                c.transport.disconnect(graceful=False)
        room.seen = 0
        room.all_seen.clear()
        for c in room.conns:
            c.seen = False
    log = open(spec["log"], "ab")  # noqa: ASYNC230  (nothing else runs yet)
    calls0 = redis_calls(spec.get("redis"))
    listen0 = listen_counters()
    attempts.update(refused=0, tries=0)
    failures.clear()
    connect_times.clear()
    t0 = now()
    deadline[0] = t0 + STORM_BOUND * spec["limit"]
    proc = subprocess.Popen(  # noqa: ASYNC220
        spec["argv"], cwd=spec["cwd"], env=spec["env"], stdout=log, stderr=subprocess.STDOUT
    )
    listening = asyncio.ensure_future(listening_after(proc.pid, port, t0, spec["limit"]))
    # Every client reconnects at once, as browsers' reconnect loops do (no client-side gate).
    unbounded = asyncio.Semaphore(n)
    await asyncio.gather(*(connect_room(r, room, unbounded) for r, room in enumerate(rooms)))
    connected = now() - t0
    back_clients = sum(1 for room in rooms for c in room.conns if c is not None)
    warmed = await warm_all()
    back = now() - t0
    cold = [room for room in rooms if complete(room) and room.seen < room.n]
    missing = [c for room in cold for c in room.conns if c is not None and not c.seen]
    calls = calls_delta(calls0, redis_calls(spec.get("redis")))
    listen1 = listen_counters()
    listen_s = await listening
    for room in rooms:
        await close_many(room.conns, timeout=30)
    return {
        "clients": n,
        "clients_back": back_clients,
        "bound_s": STORM_BOUND * spec["limit"],
        "backlog": spec.get("backlog"),
        "listening_s": listen_s,
        "connected_s": connected,
        "all_back_s": back,
        "rooms_back": sum(warmed),  # rooms with every member back, and a broadcast that reached them all
        "members_missing": len(missing),  # connected, in a room not back, without its broadcast
        "missing_closed": sum(1 for c in missing if c.transport is None or c.transport.is_disconnected),
        "backoff": bool(spec.get("backoff")),
        "rooms": len(rooms),
        "refused": attempts["refused"],
        "attempts": attempts["tries"],
        "failures": failures,
        "connect_p50_s": percentile(connect_times, 50),
        "connect_p99_s": percentile(connect_times, 99),
        "connect_max_s": max(connect_times, default=float("nan")),
        "listen_overflows": {k: listen1.get(k, 0) - v for k, v in listen0.items()},
        "redis_calls": calls,
        "redis_calls_per_reconnect": sum(calls.values()) / n if calls else None,
        "new_pid": proc.pid,
    }


async def resume(spec: dict[str, Any]) -> dict[str, Any]:
    """Resume of missed messages in a room with history (``bench/resume.py``)."""
    from .resume import resume as run

    return await run(spec)


WORKLOADS = {
    "echo": echo, "handshake": handshake, "memory": memory, "fanout": fanout, "resume": resume,
    "scale_room": scale_room, "scale_chat": scale_chat, "scale_storm": scale_storm,
}  # fmt: skip


def main(argv: list[str]) -> None:
    spec = json.loads(argv[1])
    gc.disable()  # the client's own pauses must not show up as server latency
    try:
        result = asyncio.run(asyncio.wait_for(WORKLOADS[spec["workload"]](spec), spec.get("timeout", 300)))
    except Exception as exc:
        import traceback

        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv)
