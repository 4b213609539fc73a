"""What presence's Redis store costs per call: heartbeats, ``count`` and ``members`` on big rooms.

    python bench/presence_store.py            # a private redis-server on a free port
    python bench/presence_store.py --reps 10

Fills the store directly (no servers): one room of 10,000 members, then 1,000 rooms of 10.
Each call is measured twice: the time Redis spent in its scripts (``INFO commandstats``, exact
because the redis-server is private to this run) and the wall time of the call from Python
(with the round trip, encoding and decoding, and whatever else loads this machine); median and
maximum of ``--reps`` calls. Prints a Markdown table; the raw times go to
bench/raw/presence-store.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ravyn_channels.presence.redis_store import GROUPS_PER_CALL, RedisPresence  # noqa: E402


async def script_usec(store: RedisPresence) -> int:
    stats = await store._clients[0].info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


async def timed(store: RedisPresence, call: Callable[[], Awaitable[Any]], reps: int) -> dict[str, list[float]]:
    """Redis script time and wall time (seconds) of ``reps`` calls."""
    redis_s, wall_s = [], []
    for _ in range(reps):
        before = await script_usec(store)
        started = time.perf_counter()
        await call()
        wall_s.append(time.perf_counter() - started)
        redis_s.append((await script_usec(store) - before) / 1e6)
    return {"redis": redis_s, "wall": wall_s}


def info(n: int) -> dict[str, Any]:
    return {"user_id": str(n), "username": f"user{n}", "joined_at": 1.0, "meta": {"nick": f"n{n}"}}


async def measure(url: str, reps: int) -> dict[str, dict[str, list[float]]]:
    store = RedisPresence([{"address": url}], "bench", lifetime=30.0)
    results: dict[str, dict[str, list[float]]] = {}
    try:
        big = [f"c{i}" for i in range(10_000)]
        for start in range(0, len(big), 1000):
            await store.join({"big": {cid: info(i) for i, cid in enumerate(big[start : start + 1000], start)}})
        results["heartbeat, 1 room of 10,000 members"] = await timed(store, lambda: store.beat({"big": big}), reps)
        results["count, 1 room of 10,000 members"] = await timed(store, lambda: store.count("big"), reps * 4)
        results["members (state), 1 room of 10,000 members"] = await timed(store, lambda: store.state("big"), reps)
        await store.leave({"big": big})

        rooms = {f"r{r}": [f"r{r}c{i}" for i in range(10)] for r in range(1000)}
        await store.join({room: {cid: info(i) for i, cid in enumerate(cids)} for room, cids in rooms.items()})
        results[f"heartbeat, 1,000 rooms of 10 ({1000 // GROUPS_PER_CALL} calls)"] = await timed(
            store, lambda: store.beat(rooms), reps
        )
        first = dict(list(rooms.items())[:GROUPS_PER_CALL])
        name = f"one heartbeat call ({GROUPS_PER_CALL} rooms of 10)"
        results[name] = await timed(store, lambda: store.beat(first), reps)
        await store.leave(rooms)
    finally:
        await store.aclose()
    return results


def private_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    import redis

    for _ in range(200):
        try:
            redis.Redis(port=port, socket_connect_timeout=0.2).ping()
            return proc, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        proc, url = private_redis(tmp)
        try:
            results = asyncio.run(measure(url, args.reps))
        finally:
            proc.kill()
            proc.wait(5)
    print(f"Presence store calls (a private redis-server; {args.reps} calls each, `count` {args.reps * 4})\n")
    print("| call | Redis script time: median | max | wall time from Python: median | max |")
    print("|---|---:|---:|---:|---:|")

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.1f} ms | {max(values) * 1000:.1f} ms"

    for name, times in results.items():
        print(f"| {name} | {ms(times['redis'])} | {ms(times['wall'])} |")
    raw = ROOT / "bench" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "presence-store.json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
