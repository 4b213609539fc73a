"""Room lifecycle hooks across two daphne processes on Redis: once per transition, also after a SIGKILL."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, Server, StartServer, write_redis_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.integration.apps.lifecycle:app"


def pair(tmp_path: Path, start_server: StartServer) -> tuple[Server, Server]:
    write_redis_settings(tmp_path)
    settings = tmp_path / "redis_settings.py"
    settings.write_text(settings.read_text() + 'RAVYN_CHANNELS = {"AUTODISCOVER": [], "PRESENCE_TTL": 2.0}\n')
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    return (
        start_server(APP, settings="redis_settings", env=env),
        start_server(APP, settings="redis_settings", env=env),
    )


def hooks(*servers: Server, room: str | None = None) -> list[tuple[float, str, str]]:
    """Every hook line of the servers, in time order: (time, first|last, room)."""
    found = []
    for server in servers:
        for line in server.log().splitlines():
            if line.startswith("HOOK "):
                _, at, which, name, _ = line.split(" ")
                if room is None or name == room:
                    found.append((float(at), which, name))
    return sorted(found)


async def join(ws_connect: Any, server: Server, room: str) -> Any:
    ws = await ws_connect(f"{server.ws}/life/{room}")
    assert await asyncio.wait_for(ws.recv(), 5) == "joined"
    return ws


async def wait_for(condition: Any, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_first_join_and_last_leave_run_once_across_processes(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    on_a = await join(ws_connect, a, "x")
    await wait_for(lambda: len(hooks(a, b, room="x")) == 1)
    on_b = await join(ws_connect, b, "x")
    await on_a.close()
    await asyncio.sleep(0.5)
    assert [h[1] for h in hooks(a, b, room="x")] == ["first"]  # B still has a member
    await on_b.close()
    await wait_for(lambda: len(hooks(a, b, room="x")) == 2)
    await asyncio.sleep(0.5)
    assert [h[1] for h in hooks(a, b, room="x")] == ["first", "last"]
    assert "first x" in a.log() and "last x" in b.log()


async def test_a_sigkilled_process_counts_as_left_once(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    shared_a, alone_a = await join(ws_connect, a, "y"), await join(ws_connect, a, "z")
    shared_b = await join(ws_connect, b, "y")
    await wait_for(lambda: len(hooks(a, b)) == 2)  # first y, first z (both on A)
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(10)
    del shared_a, alone_a
    # z's only member died with A: B's sweep runs z's last-leave within PRESENCE_TTL (2 s).
    await wait_for(lambda: [h[1] for h in hooks(b, room="z")] == ["last"])
    assert [h[1] for h in hooks(a, b, room="y")] == ["first"]  # y still has B's member
    await shared_b.close()
    await wait_for(lambda: [h[1] for h in hooks(b, room="y")] == ["last"])
    await asyncio.sleep(2.5)  # more sweeps: nothing runs twice
    assert [h[1] for h in hooks(a, b, room="y")] == ["first", "last"]
    assert [h[1] for h in hooks(a, b, room="z")] == ["first", "last"]


async def test_racing_joins_and_leaves_alternate_first_and_last(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    rng = random.Random(17)

    async def visitor(i: int) -> None:
        for _ in range(6):
            ws = await join(ws_connect, a if rng.random() < 0.5 else b, "busy")
            await asyncio.sleep(rng.random() * 0.05)
            await ws.close()
            await asyncio.sleep(rng.random() * 0.1)

    await asyncio.gather(*(visitor(i) for i in range(8)))
    await asyncio.sleep(1.0)
    sequence = [h[1] for h in hooks(a, b, room="busy")]
    assert sequence and sequence[0] == "first" and sequence[-1] == "last"
    assert all(x != y for x, y in itertools.pairwise(sequence)), sequence  # strictly alternating
    print(f"{len(sequence) // 2} occupied periods over 48 visits")
