"""The ``resume`` workload: a client comes back to a room with history and is sent what it missed.

Run by ``bench.client`` (``{"workload": "resume", ...}``). Per target (a
``history`` server; its URL ends in ``/fanout/``), in a fresh room: a sender
broadcasts one marker and then ``messages`` messages of ``size`` bytes
(``window`` in flight) and leaves. Then, ``rounds`` times (targets interleaved),
a client connects with ``?since=<the marker's position>&timing=1``, is sent the
``messages`` it missed, then ``timing:<ms>``, and leaves (the room is unchanged).
Figures, medians over the rounds:

- ``server_ms``: the handler's own time for ``manager.connect(since=...)``
  (accept, join, read the history, send the replay), as it reports it;
- ``cpu_ms``: the server processes' CPU time from the connect until ``timing``
  arrived (the handshake included), from ``/proc/<pid>/task/*/schedstat`` (ns,
  where psutil's clock ticks are 10 ms);
- ``client_ms``: from the connect until the client had the last replayed message.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from typing import Any

from .client import Conn, close_many, cpu, now, open_conn, slice_order


def cpu_ns(pids: list[int]) -> float:
    """CPU seconds the processes' threads have run so far, to the nanosecond (``cpu`` where not Linux)."""
    total = 0
    try:
        for pid in pids:
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        total += int(f.read().split()[0])
                except (FileNotFoundError, ProcessLookupError):  # a thread that has just ended
                    pass
    except OSError:
        return cpu(pids)
    return total / 1e9


async def _fill(url: str, messages: int, size: int, window: int) -> str:
    """Broadcast a marker and ``messages`` more into the room at ``url``; the marker's position."""
    got = [0]
    wanted = [1]
    ready = asyncio.Event()

    def on_text(conn: Conn, data: bytes) -> None:
        got[0] += 1
        if got[0] >= wanted[0]:
            ready.set()

    sender = await open_conn(url, on_text)
    try:
        sender.send(b"marker")
        await asyncio.wait_for(ready.wait(), 30)
        since = str(json.loads(sender.envelope)["position"])
        payload = b"x" * size
        sent = 0
        while sent < messages:
            batch = min(window, messages - sent)
            ready.clear()
            wanted[0] = got[0] + batch
            for _ in range(batch):
                sender.send(payload)
            await asyncio.wait_for(ready.wait(), 60)
            sent += batch
    finally:
        await close_many([sender])
    return since


async def _resume(url: str, since: str, messages: int, pids: list[int]) -> dict[str, float]:
    state: dict[str, Any] = {"replayed": 0, "last": None, "timing": None}
    done = asyncio.Event()

    def on_text(conn: Conn, data: bytes) -> None:
        if data.startswith(b"timing:"):
            state["timing"] = float(data[7:])
            done.set()
            return
        state["replayed"] += 1
        if state["replayed"] == messages:
            state["last"] = now()

    c0, t0 = cpu_ns(pids), now()
    back = await open_conn(f"{url}?since={since}&timing=1", on_text)
    try:
        await asyncio.wait_for(done.wait(), 60)
        used = cpu_ns(pids) - c0
    finally:
        await close_many([back])
    if state["replayed"] != messages or state["last"] is None:
        raise RuntimeError(f"expected a replay of {messages} messages, got {state['replayed']} (a resync?)")
    return {"server_ms": state["timing"], "cpu_ms": used * 1e3, "client_ms": (state["last"] - t0) * 1e3}


async def resume(spec: dict[str, Any]) -> dict[str, Any]:
    targets = spec["targets"]
    messages, size, window = spec["messages"], spec["size"], spec.get("window", 50)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    room = f"resume{os.getpid()}"
    since: dict[str, str] = {}
    failed: dict[str, str] = {}
    for name, target in targets.items():
        try:
            since[name] = await _fill(target["urls"][0] + room, messages, size, window)
        except Exception as exc:  # reported; the other targets go on
            failed[name] = f"{type(exc).__name__}: {exc}"
    await asyncio.sleep(0.5)  # the senders' closes are handled before the resumes are measured
    for name in slice_order(list(targets), spec["rounds"]):
        if name in failed:
            continue
        target = targets[name]
        try:
            runs[name].append(await _resume(target["urls"][0] + room, since[name], messages, target["pids"]))
        except Exception as exc:
            failed[name] = f"{type(exc).__name__}: {exc}"
    out: dict[str, Any] = {name: {"error": error} for name, error in failed.items()}
    for name, found in runs.items():
        if name in failed:
            continue
        out[name] = {key: statistics.median(run[key] for run in found) for key in ("server_ms", "cpu_ms", "client_ms")}
        out[name].update(messages=messages, size=size, rounds=len(found), room=room)
        out[name]["cpu_ms_all"] = [round(run["cpu_ms"], 1) for run in found]
    return out
