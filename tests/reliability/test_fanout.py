"""Broadcasts across processes: nothing lost for a reading member, in order, however many are queued."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import StartServer, write_redis_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.reliability.apps:app"
ROOT = Path(__file__).resolve().parents[2]


async def test_bursts_across_processes_on_redis_channel_layer_lose_nothing(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    """Eight rooms at once each send 500 broadcasts back to back from process A; each room's member
    on process B gets all of its room's, in order.

    They all queue on B's one process channel in Redis faster than B reads them: with
    the layer's default per-channel capacity (100), ``group_send`` would drop the rest.
    """
    write_redis_settings(tmp_path, pubsub=False)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    a = start_server(APP, settings="redis_settings", env=env)
    b = start_server(APP, settings="redis_settings", env=env)
    rooms, count = 8, 500

    async def room(r: int) -> None:
        async with ws_connect(f"{b.ws}/room/burst{r}") as reader, ws_connect(f"{a.ws}/room/burst{r}") as blaster:
            await asyncio.sleep(0.5)  # both processes have joined the room's group
            await go.wait()
            await blaster.send(f"tight:{count}")
            for i in range(count):
                message = await asyncio.wait_for(reader.recv(), 15)
                assert message[:8] == f"{i:08d}", f"room {r}: message {i} lost or out of order: got {message[:8]!r}"
            assert await asyncio.wait_for(blaster.recv(), 15) == "blasted"

    go = asyncio.Event()
    tasks = [asyncio.ensure_future(room(r)) for r in range(rooms)]
    await asyncio.sleep(1.5)
    go.set()
    await asyncio.gather(*tasks)
