"""Room lifecycle hooks in one process (in-memory layer)."""

from __future__ import annotations

import asyncio

import pytest

from ravyn_channels import ChannelsGroup, ConnectionManager, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.testing import connect

pytestmark = pytest.mark.django_db

manager = ConnectionManager("tests.lifecycle.unit")
calls: list[tuple[str, str]] = []


@manager.on_first_join
async def first(room: str) -> None:
    calls.append(("first", room))


@manager.on_last_leave
async def last(room: str) -> None:
    calls.append(("last", room))
    if room == "boom":
        raise RuntimeError("a failing hook is logged")


@websocket("/life/{room}")
async def life(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=ChannelsGroup("shared-life") if room == "shared" else room)
    try:
        while True:
            await websocket.receive_text()
    except WebSocketDisconnect:
        manager.disconnect(websocket)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_first_and_last_member_of_a_room() -> None:
    calls.clear()
    async with connect(life, "/life/a") as one:
        await settle()
        assert calls == [("first", "a")]
        async with connect(life, "/life/a"), connect(life, "/life/b"):
            await settle()
            assert calls == [("first", "a"), ("first", "b")]
        await settle()
        assert calls == [("first", "a"), ("first", "b"), ("last", "b")]
        del one
    await settle()
    assert calls[-1] == ("last", "a") and len(calls) == 4


async def test_a_failing_hook_is_logged_and_shared_groups_use_their_name(caplog: pytest.LogCaptureFixture) -> None:
    calls.clear()
    async with connect(life, "/life/boom"), connect(life, "/life/shared"):
        await settle()
    await settle()
    assert sorted(calls) == [("first", "boom"), ("first", "shared-life"), ("last", "boom"), ("last", "shared-life")]
    assert "hook" in caplog.text and "a failing hook is logged" in caplog.text
