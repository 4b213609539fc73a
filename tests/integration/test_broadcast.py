"""The seed's second program: its own list manager, then ours across two daphne processes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from ravyn_channels.ops import OPS_GROUP
from ravyn_channels.rooms import group_name, manager_group

from .conftest import REDIS_URL, StartServer, write_redis_settings

pytestmark = pytest.mark.integration

SEED_BROADCAST = '''\
from typing import List
from ravyn_channels import Ravyn, websocket, WebSocket, WebSocketDisconnect

class ConnectionManager:
    def __init__(self):
        self.active_connections: List[WebSocket] = []

    async def connect(self, websocket: WebSocket):
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket):
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str):
        for connection in self.active_connections:
            await connection.send_text(message)

manager = ConnectionManager()

@websocket("/chat")
async def chat_room(websocket: WebSocket) -> None:
    await manager.connect(websocket)
    try:
        while True:
            data = await websocket.receive_text()
            await manager.broadcast(f"Broadcast: {data}")
    except WebSocketDisconnect:
        manager.disconnect(websocket)

app = Ravyn(routes=[chat_room])
'''

# The same program with the seed's class deleted and ours imported: nothing else changes.
OURS = SEED_BROADCAST.replace(
    "from ravyn_channels import Ravyn, websocket, WebSocket, WebSocketDisconnect",
    "from ravyn_channels import ConnectionManager, Ravyn, websocket, WebSocket, WebSocketDisconnect",
)
OURS = OURS[: OURS.index("class ConnectionManager")] + OURS[OURS.index("manager = ConnectionManager()") :]




async def recv(ws: Any) -> str:
    return str(await asyncio.wait_for(ws.recv(), 5))


@asynccontextmanager
async def chat_client(ws_connect: Any, url: str, *earlier: Any) -> AsyncIterator[Any]:
    """A chat client that has joined, known with the programs' own protocol: it says something
    once connected, and waits until it and the ``earlier`` clients have heard it."""
    async with ws_connect(url) as ws:
        await ws.send("joined")
        for c in (*earlier, ws):
            assert await recv(c) == "Broadcast: joined"
        yield ws


async def test_seed_list_manager_runs_unchanged(tmp_path: Path, start_server: StartServer, ws_connect: Any) -> None:
    (tmp_path / "room.py").write_text(SEED_BROADCAST)
    server = start_server("room:app", cwd=tmp_path)
    url = f"{server.ws}/chat"
    async with chat_client(ws_connect, url) as c1, chat_client(ws_connect, url, c1) as c2:
        async with chat_client(ws_connect, url, c1, c2) as c3:
            await c2.send("x")
            assert [await recv(c) for c in (c1, c2, c3)] == ["Broadcast: x"] * 3
        # c3 left: the seed's manager removes it when its handler sees the disconnect, which nothing
        # outside acknowledges (and a broadcast to it before that would fail the sender's handler).
        await asyncio.sleep(0.2)
        await c1.send("y")
        assert [await recv(c) for c in (c1, c2)] == ["Broadcast: y"] * 2


async def test_our_manager_in_one_process_in_memory(tmp_path: Path, start_server: StartServer, ws_connect: Any) -> None:
    assert "class ConnectionManager" not in OURS and "manager.disconnect(websocket)" in OURS
    (tmp_path / "room.py").write_text(OURS)
    server = start_server("room:app", cwd=tmp_path)
    url = f"{server.ws}/chat"
    async with chat_client(ws_connect, url) as c1, chat_client(ws_connect, url, c1) as c2, chat_client(
        ws_connect, url, c1, c2
    ) as c3:
        await c3.send("x")
        assert [await recv(c) for c in (c1, c2, c3)] == ["Broadcast: x"] * 3


def two_processes(tmp_path: Path, start_server: StartServer, source: str, pubsub: bool = False) -> tuple[Any, Any]:
    (tmp_path / "room.py").write_text(source)
    write_redis_settings(tmp_path, pubsub=pubsub)
    a = start_server("room:app", cwd=tmp_path, settings="redis_settings")
    b = start_server("room:app", cwd=tmp_path, settings="redis_settings")
    return a, b


@pytest.mark.redis
@pytest.mark.parametrize("pubsub", [False, True], ids=["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_our_manager_across_two_processes(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, pubsub: bool
) -> None:
    a, b = two_processes(tmp_path, start_server, OURS, pubsub)
    async with chat_client(ws_connect, f"{a.ws}/chat") as a1, chat_client(
        ws_connect, f"{a.ws}/chat", a1
    ) as a2, chat_client(ws_connect, f"{b.ws}/chat", a1, a2) as b1:
        async with chat_client(ws_connect, f"{b.ws}/chat", a1, a2, b1) as b2:
            await a1.send("from A")
            assert [await recv(c) for c in (a1, a2, b1, b2)] == ["Broadcast: from A"] * 4
            await b2.send("from B")
            assert [await recv(c) for c in (a1, a2, b1, b2)] == ["Broadcast: from B"] * 4
        # No wait: a socket that has closed is skipped even before its handler removes it.
        await a2.send("after b2 left")
        assert [await recv(c) for c in (a1, a2, b1)] == ["Broadcast: after b2 left"] * 3


ROOMS = "tests.integration.apps.rooms:app"


def rooms_pair(tmp_path: Path, start_server: StartServer, pubsub: bool = False) -> tuple[Any, Any, str]:
    prefix = write_redis_settings(tmp_path, pubsub=pubsub)
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parents[2]}"}
    a = start_server(ROOMS, settings="redis_settings", env=env)
    b = start_server(ROOMS, settings="redis_settings", env=env)
    return a, b, prefix


@pytest.mark.redis
async def test_rooms_exclude_and_personal_across_processes(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b, _ = rooms_pair(tmp_path, start_server)
    async with ws_connect(f"{a.ws}/room/red") as a_red, ws_connect(f"{b.ws}/room/red") as b_red, ws_connect(
        f"{b.ws}/room/blue"
    ) as b_blue:
        for ws in (a_red, b_red, b_blue):  # answered once the handler has joined its room
            await ws.send("id")
            await recv(ws)
        # Per-room broadcast: blue hears nothing.
        await a_red.send("say:hi")
        assert await recv(a_red) == "red: hi" and await recv(b_red) == "red: hi"
        # Exclude the sender, across processes.
        await b_red.send("others:psst")
        assert await recv(a_red) == "red: psst"
        # Everyone connected through the manager, both processes.
        await a_red.send("all:everyone")
        assert [await recv(c) for c in (a_red, b_red, b_blue)] == ["everyone"] * 3
        # Personal message from process A to a socket of process B, by connection id.
        await b_blue.send("id")
        blue_id = await recv(b_blue)
        await a_red.send(f"to:{blue_id} just you")
        assert await recv(b_blue) == "just you"
        # Nothing else arrived anywhere (blue never heard red; the sender never heard its own 'others'):
        # a marker sent to everyone after it all is the next frame on every socket (RedisChannelLayer
        # gives each process one queue, so what was sent before it arrives before it).
        await a_red.send("all:marker")
        assert [await recv(c) for c in (a_red, b_red, b_blue)] == ["marker"] * 3


@pytest.mark.redis
async def test_sync_broadcast_from_another_process(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    import subprocess
    import sys

    from .conftest import server_env

    a, b, _ = rooms_pair(tmp_path, start_server)
    async with ws_connect(f"{a.ws}/room/news") as on_a, ws_connect(f"{b.ws}/room/news") as on_b:
        for ws in (on_a, on_b):  # answered once the handler has joined its room
            await ws.send("id")
            await recv(ws)
        script = (
            "import django; django.setup()\n"
            "from ravyn_channels import ConnectionManager\n"
            "ConnectionManager('tests.rooms').broadcast_sync('from a worker', 'news')\n"
        )
        env = server_env("redis_settings")
        env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env['PYTHONPATH']}"
        await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], env=env, check=True, timeout=30)
        assert await recv(on_a) == "from a worker"
        assert await recv(on_b) == "from a worker"


def redis_group_members(prefix: str) -> dict[str, int]:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    return {key.decode(): int(r.zcard(key)) for key in r.scan_iter(f"{prefix}:group:*")}


async def settled_members(prefix: str, expected: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
    """The group memberships in Redis once they are ``expected`` (read again until then, bounded)."""
    deadline = time.monotonic() + timeout
    members = {k.rsplit(":", 1)[1]: v for k, v in redis_group_members(prefix).items()}
    while members != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        members = {k.rsplit(":", 1)[1]: v for k, v in redis_group_members(prefix).items()}
    return members


@pytest.mark.redis
async def test_no_group_residue_after_many_cycles_and_crashes(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    a, b, prefix = rooms_pair(tmp_path, start_server)
    async with ws_connect(f"{b.ws}/room/stay") as stayer:
        for i in range(1000):
            server = a if i % 2 else b
            async with ws_connect(f"{server.ws}/room/r{i % 7}") as ws:
                if i % 10 == 0:
                    await ws.send("crash:")  # the handler raises: 1011, no disconnect() call
                    await asyncio.wait_for(ws.wait_closed(), 5)
                    assert ws.close_code == 1011
        # Only the room that still has a member is left, holding process B's channel alone
        # (and the private group through which sockets are closed from anywhere: ravyn_channels.ops).
        expected = {
            group_name("stay", "tests.rooms"): 1,
            manager_group("tests.rooms"): 1,
            OPS_GROUP: 1,
        }
        assert await settled_members(prefix, expected) == expected
        await stayer.send("say:still here")
        assert await recv(stayer) == "stay: still here"
    assert await settled_members(prefix, {}) == {}


@pytest.mark.redis
@pytest.mark.parametrize("pubsub", [False, True], ids=["RedisChannelLayer", "RedisPubSubChannelLayer"])
async def test_idle_connection_survives_on_redis(
    redis_ready: None, tmp_path: Path, start_server: StartServer, ws_connect: Any, pubsub: bool
) -> None:
    """redis-py 8's 5 s socket timeout equals the layer's blocking pop: without the fix in
    redis_channel_layer(), the layer reader fails every ~5 s while nobody talks. Three of those
    periods idle are enough to see it (test_redis_idle.py idles 30 s with these layers too)."""
    a, b, _ = rooms_pair(tmp_path, start_server, pubsub)
    async with ws_connect(f"{a.ws}/room/quiet") as on_a, ws_connect(f"{b.ws}/room/quiet") as on_b:
        await asyncio.sleep(16)
        await on_b.send("say:still there?")
        assert await recv(on_a) == "quiet: still there?"
        assert await recv(on_b) == "quiet: still there?"
    for server in (a, b):
        assert "Channel layer receive failed" not in server.log()
