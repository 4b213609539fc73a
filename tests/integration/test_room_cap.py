"""``MAX_ROOMS_PER_CONNECTION`` on a real daphne: one client cannot join rooms without bound."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import psutil
import pytest
import websockets

from .conftest import StartServer

pytestmark = pytest.mark.integration

APP = "tests.integration.apps.joins:app"


async def command(ws: Any, text: str) -> dict[str, Any]:
    """Send a command; its answer, skipping the presence frames in between."""
    await ws.send(text)
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if "type" not in frame:
            return dict(frame)


async def test_one_connection_stops_at_the_cap_and_can_go_on(start_server: StartServer) -> None:
    server = start_server(APP, env={"JOINS_CAP": "5"})
    async with websockets.connect(f"{server.ws}/joins") as ws:
        for i in range(5):
            assert await command(ws, f"join:r{i}") == {"joined": f"r{i}"}
        assert await command(ws, "join:r5") == {"refused": "r5", "limit": 5, "code": 1008}
        assert await command(ws, "join:r2") == {"joined": "r2"}  # a room it is in already is no new room
    async with websockets.connect(f"{server.ws}/joins") as other:  # the cap is per connection
        assert await command(other, "join:r5") == {"joined": "r5"}


async def test_uncaught_too_many_rooms_closes_with_1008(start_server: StartServer) -> None:
    server = start_server(APP, env={"JOINS_CAP": "1"})
    async with websockets.connect(f"{server.ws}/joins") as ws:
        assert await command(ws, "join:a") == {"joined": "a"}
        await ws.send("force:b")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, "too many rooms (limit 1)")
    server.wait_for_log("too many rooms (limit 1)")
    assert "Traceback" not in server.log()


async def test_default_cap_bounds_what_one_client_costs(start_server: StartServer) -> None:
    server = start_server(APP)
    proc = psutil.Process(server.proc.pid)
    before = sum(proc.cpu_times()[:2])
    async with websockets.connect(f"{server.ws}/joins") as ws:
        answers = [await command(ws, f"join:many-{i}") for i in range(150)]
    spent = sum(proc.cpu_times()[:2]) - before
    assert [a.get("joined") for a in answers[:100]] == [f"many-{i}" for i in range(100)]
    assert all(a == {"refused": f"many-{i}", "limit": 100, "code": 1008} for i, a in enumerate(answers[100:], 100))
    assert spent < 30, f"one client joining 150 rooms cost {spent:.1f} s of server CPU"  # generous: ~0.2 s here
    print(f"server CPU for one client asking for 150 rooms (100 granted): {spent:.2f} s")
