"""Rooms are their manager's own; plain consumers get broadcasts only, and only when invited (issue 12).

Real daphne, a real websocket client, on the in-memory layer (one process) and on the Redis
pub/sub layer (two processes: the rooms meet on the layer and in the presence store).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import ROOT, Server, StartServer, require_redis, write_redis_settings

pytestmark = pytest.mark.integration

ISOLATION = "tests.integration.apps.isolation:app"
INTEROP = "tests.integration.apps.interop:app"
LAYERS = [pytest.param("memory", id="in-memory"), pytest.param("redis", id="redis-pubsub", marks=pytest.mark.redis)]


def serve(tmp_path: Path, start_server: StartServer, layer: str, app: str) -> tuple[Server, Server]:
    """One daphne in memory; two daphne processes on the Redis pub/sub layer."""
    if layer == "memory":
        server = start_server(app)
        return server, server
    require_redis()
    write_redis_settings(tmp_path, pubsub=True)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    return (
        start_server(app, settings="redis_settings", env=env),
        start_server(app, settings="redis_settings", env=env),
    )


async def drain(ws: Any, seconds: float = 0.8) -> list[str]:
    """Every frame that arrives within ``seconds``."""
    frames: list[str] = []
    try:
        while True:
            frames.append(str(await asyncio.wait_for(ws.recv(), seconds)))
    except TimeoutError:
        return frames


def presence_members(frames: list[str]) -> list[dict[str, Any]]:
    """The member infos named in presence frames."""
    found: list[dict[str, Any]] = []
    for frame in frames:
        if frame.startswith("{"):
            data = json.loads(frame)
            for key in ("members", "joins", "leaves"):
                found.extend((data.get(key) or {}).values())
    return found


@pytest.mark.parametrize("layer", LAYERS)
async def test_two_managers_rooms_of_the_same_name_never_meet(
    tmp_path: Path, start_server: StartServer, ws_connect: Any, layer: str
) -> None:
    a, b = serve(tmp_path, start_server, layer, ISOLATION)
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(f"{b.ws}/staff/lobby"):
            pass
    assert refused.value.response.status_code == 403  # the guarded route is guarded
    async with ws_connect(f"{a.ws}/staff/lobby?staff=1") as boss, ws_connect(f"{b.ws}/open/lobby?watch=1") as anon:
        await asyncio.sleep(0.5)
        await boss.send("secret plan")
        await anon.send("hello")
        boss_saw, anon_saw = await drain(boss), await drain(anon)
        assert "staff lobby: secret plan" in boss_saw
        assert "open lobby: hello" in anon_saw
        assert not [f for f in anon_saw if "secret" in f or "staff" in f], anon_saw
        assert not [f for f in boss_saw if "hello" in f or "open lobby" in f], boss_saw
        # Presence too: each side sees only its own manager's member.
        # Presence frames carry the meta only (opaque member ids): no usernames.
        assert {m["meta"]["who"] for m in presence_members(boss_saw)} == {"boss"}
        assert {m["meta"]["who"] for m in presence_members(anon_saw)} == {"anonymous"}
        await anon.send("count")
        assert json.loads(await asyncio.wait_for(anon.recv(), 5)) == {"count": 1}


@pytest.mark.parametrize("layer", LAYERS)
async def test_a_plain_consumer_in_a_group_named_like_a_room_is_left_alone(
    tmp_path: Path, start_server: StartServer, ws_connect: Any, layer: str
) -> None:
    a, b = serve(tmp_path, start_server, layer, ISOLATION)
    async with ws_connect(f"{a.ws}/plain/notifications") as plain:
        async with ws_connect(f"{b.ws}/open/notifications?watch=1") as anon:
            async with ws_connect(f"{a.ws}/open/notifications"):
                await anon.send("hi")
                await drain(anon, 0.5)
        await plain.send("ping")
        try:
            assert await drain(plain) == ["pong ping"]  # nothing of the room, and not closed
        except ConnectionClosed:
            pytest.fail(f"the plain consumer was closed with {plain.close_code} {plain.close_reason!r}")
    assert "Traceback" not in a.log() + b.log()


@pytest.mark.parametrize("layer", LAYERS)
async def test_channels_group_shares_broadcasts_with_plain_consumers_and_nothing_else(
    tmp_path: Path, start_server: StartServer, ws_connect: Any, layer: str
) -> None:
    a, b = serve(tmp_path, start_server, layer, INTEROP)
    async with ws_connect(f"{a.ws}/plain/subscriber") as plain, ws_connect(f"{b.ws}/shared") as ours:
        async with ws_connect(f"{a.ws}/shared"):  # presence changes in the shared group: a join, then a leave
            await asyncio.sleep(0.5)
        await ours.send("hello")
        await asyncio.sleep(0.3)
        await plain.send("yo")
        try:
            plain_saw = await drain(plain)
        except ConnectionClosed:
            pytest.fail(f"the subscriber was closed with {plain.close_code} {plain.close_reason!r}")
        assert plain_saw == ["shared: hello", "plain: yo"]  # broadcasts both ways, no presence event
        ours_saw = await drain(ours)
        assert "shared: hello" in ours_saw and "plain: yo" in ours_saw
        assert any(json.loads(f)["type"] == "presence_diff" for f in ours_saw if f.startswith("{"))
    assert "Traceback" not in a.log() + b.log()
