"""Ordering: one sender's broadcasts reach every member in the order they were sent.

Several members send at once; every member (senders included) must receive each
sender's messages complete and in send order — in one daphne process (in-memory
layer) and across two daphne processes on Redis (both channels-redis layers).
Messages of different senders may interleave in any way.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT, Server, StartServer, write_redis_settings

pytestmark = pytest.mark.integration

APP = "tests.reliability.apps:app"  # /room/{room}: "say:x" broadcasts "{room}: x", "ping" answers "pong"
MEMBERS = 6
SENDERS = 4
EACH = 100


async def check_order(servers: list[Server], ws_connect: Any) -> None:
    room = f"order-{uuid.uuid4().hex[:6]}"
    clients = [await ws_connect(f"{servers[i % len(servers)].ws}/room/{room}") for i in range(MEMBERS)]
    try:
        for ws in clients:  # answered once the handler's connect() returned: every member has joined
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), 5) == "pong"

        async def send(k: int) -> None:
            for n in range(EACH):
                await clients[k].send(f"say:{k} {n}")

        async def collect(ws: Any) -> dict[int, list[int]]:
            got: dict[int, list[int]] = {k: [] for k in range(SENDERS)}
            for _ in range(SENDERS * EACH):
                text = await asyncio.wait_for(ws.recv(), 10)
                k, n = text.removeprefix(f"{room}: ").split()
                got[int(k)].append(int(n))
            return got

        collectors = [asyncio.create_task(collect(ws)) for ws in clients]
        await asyncio.gather(*(send(k) for k in range(SENDERS)))
        received = await asyncio.gather(*collectors)
    finally:
        for ws in clients:
            await ws.close()
    for i, got in enumerate(received):
        for k in range(SENDERS):
            assert got[k] == list(range(EACH)), f"member {i} got sender {k}'s messages as {got[k]}"


async def test_one_process_keeps_each_senders_order(start_server: StartServer, ws_connect: Any) -> None:
    await check_order([start_server(APP)], ws_connect)


@pytest.mark.redis
@pytest.mark.parametrize("pubsub", [False, True], ids=["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_two_processes_on_redis_keep_each_senders_order(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, pubsub: bool
) -> None:
    write_redis_settings(tmp_path, pubsub=pubsub)
    if not pubsub:  # RedisChannelLayer drops messages to a channel holding `capacity` (100): not this test's point
        path = tmp_path / "redis_settings.py"
        path.write_text(path.read_text() + 'CHANNEL_LAYERS["default"]["CONFIG"]["capacity"] = 10_000\n')
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    a = start_server(APP, settings="redis_settings", env=env)
    b = start_server(APP, settings="redis_settings", env=env)
    await check_order([a, b], ws_connect)
