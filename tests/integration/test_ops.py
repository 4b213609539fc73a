"""Closing sockets from anywhere (ravyn_channels.ops): users, rooms, one connection, across two daphne processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from .conftest import ROOT, StartServer, server_env, write_redis_settings

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.integration.apps.kick:app"


def pair(tmp_path: Path, start_server: StartServer) -> tuple[Any, Any]:
    write_redis_settings(tmp_path)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    return (
        start_server(APP, settings="redis_settings", env=env),
        start_server(APP, settings="redis_settings", env=env),
    )


async def closed_with(ws: Any, timeout: float = 5.0) -> tuple[int | None, str | None]:
    """Wait until the server closes ``ws``; returns the close code and reason the client saw."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code, ws.close_reason


async def still_open(ws: Any) -> bool:
    await ws.send("ping")
    return str(await asyncio.wait_for(ws.recv(), 5)) == "pong"


async def open_socket(ws_connect: Any, url: str) -> tuple[Any, str]:
    ws = await ws_connect(url)
    return ws, str(await asyncio.wait_for(ws.recv(), 5))


async def test_disconnect_user_closes_their_sockets_on_every_process(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    u1_a, _ = await open_socket(ws_connect, f"{a.ws}/k/red?user=1")
    u1_b, _ = await open_socket(ws_connect, f"{b.ws}/k/blue?user=1")
    u1_plain, _ = await open_socket(ws_connect, f"{b.ws}/plain?user=1")
    u2_b, _ = await open_socket(ws_connect, f"{b.ws}/k/red?user=2")
    admin, _ = await open_socket(ws_connect, f"{a.ws}/k/ops?user=9")
    await asyncio.sleep(0.3)
    await admin.send("user:1")
    assert await closed_with(u1_a) == (4001, "bye user")
    assert await closed_with(u1_b) == (4001, "bye user")
    # The manager's disconnect_user closes only its own connections; other users are untouched.
    assert await still_open(u1_plain) and await still_open(u2_b) and await still_open(admin)
    # ravyn_channels.ops.disconnect_user closes every socket of the user, managed or not.
    await admin.send("everywhere:1")
    assert await closed_with(u1_plain) == (4004, "everywhere")
    assert await still_open(u2_b)
    # The handlers saw the code and reason as WebSocketDisconnect.
    a.wait_for_log("handler saw 4001 'bye user'")
    b.wait_for_log("handler saw 4001 'bye user'")
    b.wait_for_log("handler saw 4004 'everywhere'")
    for ws in (u2_b, admin):
        await ws.close()


async def test_disconnect_room_and_kick_one_connection(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    red_a, _ = await open_socket(ws_connect, f"{a.ws}/k/red")
    red_b, _ = await open_socket(ws_connect, f"{b.ws}/k/red")
    blue_b, blue_id = await open_socket(ws_connect, f"{b.ws}/k/blue")
    other_b, _ = await open_socket(ws_connect, f"{b.ws}/k/blue")
    admin, _ = await open_socket(ws_connect, f"{a.ws}/k/ops")
    await asyncio.sleep(0.3)
    await admin.send("room:red")
    assert await closed_with(red_a) == (4002, "room closed")
    assert await closed_with(red_b) == (4002, "room closed")
    assert await still_open(blue_b)
    # One connection of process B, by its connection_id, from process A.
    assert "#" in blue_id
    await admin.send(f"kick:{blue_id}")
    assert await closed_with(blue_b) == (4003, "kicked")
    assert await still_open(other_b) and await still_open(admin)
    b.wait_for_log("handler saw 4003 'kicked'")
    for ws in (other_b, admin):
        await ws.close()


def ws_kick(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = server_env("redis_settings")
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "ws_kick", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )


async def test_ws_kick_command_from_another_process(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b = pair(tmp_path, start_server)
    u7_a, _ = await open_socket(ws_connect, f"{a.ws}/plain?user=7")
    u7_b, _ = await open_socket(ws_connect, f"{b.ws}/k/x?user=7")
    in_x, _ = await open_socket(ws_connect, f"{a.ws}/k/x")
    one, one_id = await open_socket(ws_connect, f"{b.ws}/k/y")
    bystander, _ = await open_socket(ws_connect, f"{a.ws}/k/y")
    await asyncio.sleep(0.3)
    done = await asyncio.to_thread(ws_kick, tmp_path, "--user", "7", "--code", "4010", "--reason", "banned")
    assert done.returncode == 0, done.stderr
    assert "user 7" in done.stdout
    assert await closed_with(u7_a) == (4010, "banned")
    assert await closed_with(u7_b) == (4010, "banned")
    done = await asyncio.to_thread(ws_kick, tmp_path, "--manager", "tests.kick", "x")
    assert done.returncode == 0, done.stderr
    assert await closed_with(in_x) == (1008, "")
    done = await asyncio.to_thread(ws_kick, tmp_path, "--connection", one_id, "--reason", "just you")
    assert done.returncode == 0, done.stderr
    assert await closed_with(one) == (1008, "just you")
    assert await still_open(bystander)
    await bystander.close()


def test_ws_kick_refuses_nonsense(tmp_path: Path) -> None:
    """The CLI exits non-zero with the reason on stderr (each refusal: tests/test_ws_kick.py)."""
    write_redis_settings(tmp_path)
    bad_code = ws_kick(tmp_path, "--user", "1", "--code", "1006")
    assert bad_code.returncode != 0 and "1006 is not a close code" in bad_code.stderr
