"""``python -m bench.close_latency [--fresh N] [--warm N]``: how soon 1011 and 403 arrive.

The distribution behind ``AT_ONCE`` and ``STALL`` in ``tests/integration/test_close_codes.py``:
on daphne and uvicorn serving ``tests.integration.apps.closecodes``, the time from the frame
that makes a handler raise to the client's 1011, and from the start of a handshake to the 403
of a handler that never accepts (``/noaccept``) or reads first (``/receive-first``). ``--fresh``
times the first connection to a newly started server (imports included), ``--warm`` connections
to a server that has answered one already. Prints p50, p90, p99 and max per case; run it on a
quiet and on a loaded machine and compare with the bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.conftest import Server, free_port, server_env

APP = "tests.integration.apps.closecodes:app"
CASES = ("1011", "/noaccept", "/receive-first")


def start(kind: str, directory: Path) -> Server:
    port, bindir = free_port(), Path(sys.executable).parent
    if kind == "daphne":
        argv = [str(bindir / "daphne"), "-b", "127.0.0.1", "-p", str(port), APP]
    else:
        argv = [str(bindir / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--lifespan", "off", APP]
    return Server(argv, Path.cwd(), server_env(None), port, directory / f"{kind}-{port}.log")


async def time_1011(server: Server) -> float:
    async with connect(f"{server.ws}/raise", open_timeout=5) as ws:
        started = time.monotonic()
        await ws.send("go")
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            pass
        assert ws.close_code == 1011, ws.close_code
        return time.monotonic() - started


async def time_403(server: Server, path: str) -> float:
    started = time.monotonic()
    try:
        async with connect(f"{server.ws}{path}", open_timeout=5):
            pass
    except InvalidStatus as exc:
        assert exc.response.status_code == 403, exc.response.status_code
        return time.monotonic() - started
    raise AssertionError(f"{path} was accepted")


async def one(server: Server, case: str) -> float:
    return await (time_1011(server) if case == "1011" else time_403(server, case))


def summary(values: list[float]) -> str:
    xs, n = sorted(values), len(values)

    def q(p: float) -> float:
        return xs[min(n - 1, int(p * n))] * 1e3

    return f"n={n} p50={statistics.median(xs) * 1e3:.1f} p90={q(0.9):.1f} p99={q(0.99):.1f} max={xs[-1] * 1e3:.1f} ms"


async def main(fresh: int, warm: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="close-latency-"))
    for kind in ("daphne", "uvicorn"):
        results: dict[tuple[str, str], list[float]] = {}
        for _ in range(fresh):
            for case in CASES:
                server = start(kind, directory)
                try:
                    results.setdefault(("fresh", case), []).append(await one(server, case))
                finally:
                    server.stop()
        server = start(kind, directory)
        try:
            await one(server, "1011")  # the warm-up the tests do too
            for _ in range(warm):
                for case in CASES:
                    results.setdefault(("warm", case), []).append(await one(server, case))
        finally:
            server.stop()
        for (state, case), values in results.items():
            print(f"{kind} {state} {case}: {summary(values)}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fresh", type=int, default=10, help="first connections to fresh servers, per case")
    parser.add_argument("--warm", type=int, default=100, help="connections to a warm server, per case")
    args = parser.parse_args()
    asyncio.run(main(args.fresh, args.warm))
