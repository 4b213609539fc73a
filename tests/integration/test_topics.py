"""Topics end to end: real daphne, the Python client (ravyn_channels.client), in memory and on Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ravyn_channels.client import HandshakeRefused, ReplyError, Socket

from .conftest import StartServer, free_port, write_redis_settings

pytestmark = pytest.mark.integration

APP = """\
from typing import Any
from pydantic import BaseModel
from ravyn_channels import Ravyn, WebSocket
from ravyn_channels.topics import TopicError, TopicSocket

live = TopicSocket("/live")
room = live.topic("room:{room_id:int}", presence=True)


class Message(BaseModel):
    text: str


@room.on_join
async def join(room_id: int, payload: Any) -> Any:
    if room_id == 403:
        raise TopicError("this room is closed")
    print("JOINED", room_id, flush=True)
    return {"room": room_id, "nick": (payload or {}).get("nick")}


@room.on("message")
async def message(websocket: WebSocket, room_id: int, payload: Message) -> Any:
    await room.broadcast(room_id, "message", {"text": payload.text}, exclude=websocket)
    return {"sent": payload.text}


@room.on("slow")
async def slow(payload: Any) -> str:
    import asyncio
    await asyncio.sleep(float(payload))
    return "late"


@room.on("crash")
async def crash(payload: Any) -> None:
    raise RuntimeError("topic handler bug")


from ravyn_channels.history import HistoryConfig

kept = live.topic("kept:{name}", history=HistoryConfig(max_messages=100, max_age=60))


@kept.on("say")
async def say(name: str, payload: Any) -> None:
    await kept.broadcast(name, "message", payload)


app = Ravyn(routes=[live.route]%(settings)s)
"""


def write_app(directory: Path, settings: str = "") -> None:
    (directory / "topics_app.py").write_text(APP % {"settings": settings})


async def test_two_topics_on_one_socket_replies_and_broadcast(tmp_path: Path, start_server: StartServer) -> None:
    write_app(tmp_path)
    server = start_server("topics_app:app", cwd=tmp_path)
    async with Socket(f"{server.ws}/live") as a, Socket(f"{server.ws}/live") as b:
        one, two = a.channel("room:1"), a.channel("room:2")
        assert await one.join({"nick": "ann"}) == {"room": 1, "nick": "ann"}
        assert await two.join() == {"room": 2, "nick": None}
        await b.channel("room:2").join()
        assert await b.channel("room:2").push("message", {"text": "hi"}) == {"sent": "hi"}
        assert (await two.receive("message"))["payload"] == {"text": "hi"}
        await one.leave()
        await b.channel("room:1").join()
        await b.channel("room:1").push("message", {"text": "gone"})
        with pytest.raises(TimeoutError):
            await one.receive("message", timeout=0.3)


async def test_refused_join_invalid_payload_and_crash_keep_the_socket(
    tmp_path: Path, start_server: StartServer
) -> None:
    write_app(tmp_path)
    server = start_server("topics_app:app", cwd=tmp_path)
    async with Socket(f"{server.ws}/live") as socket:
        with pytest.raises(ReplyError, match="this room is closed"):
            await socket.channel("room:403").join()
        room = socket.channel("room:5")
        await room.join()
        with pytest.raises(ReplyError) as invalid:
            await room.push("message", {"txt": 1})
        assert invalid.value.response["errors"][0]["field"] == "text"
        with pytest.raises(ReplyError, match="internal error"):
            await room.push("crash")
        assert await room.push("message", {"text": "alive"}) == {"sent": "alive"}
    log = server.wait_for_log("topic handler bug")
    assert "Traceback" in log


async def test_reply_timeout(tmp_path: Path, start_server: StartServer) -> None:
    write_app(tmp_path)
    server = start_server("topics_app:app", cwd=tmp_path)
    async with Socket(f"{server.ws}/live") as socket:
        room = socket.channel("room:6")
        await room.join()
        with pytest.raises(TimeoutError):
            await room.push("slow", 2, timeout=0.3)
        assert await room.push("message", {"text": "next"}) == {"sent": "next"}


async def test_presence_per_topic(tmp_path: Path, start_server: StartServer) -> None:
    write_app(tmp_path)
    server = start_server("topics_app:app", cwd=tmp_path)
    async with Socket(f"{server.ws}/live") as a, Socket(f"{server.ws}/live") as b:
        await a.channel("room:7").join()
        await b.channel("room:7").join()
        for _ in range(50):
            if len(a.channel("room:7").presence) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(a.channel("room:7").presence) == 2
        await b.close()
        for _ in range(50):
            if len(a.channel("room:7").presence) == 1:
                break
            await asyncio.sleep(0.05)
        assert len(a.channel("room:7").presence) == 1


async def test_refused_handshake_is_not_retried(tmp_path: Path, start_server: StartServer) -> None:
    write_app(tmp_path)
    server = start_server("topics_app:app", cwd=tmp_path)
    socket = Socket(f"{server.ws}/nowhere")
    with pytest.raises(HandshakeRefused) as refused:
        await socket.connect()
    assert refused.value.status == 403
    assert socket.connections == 0
    await socket.close()


async def test_raw_client_without_the_subprotocol_is_refused(
    tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    from websockets.exceptions import InvalidStatus

    write_app(tmp_path)
    server = start_server("topics_app:app", cwd=tmp_path)
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(f"{server.ws}/live"):
            pass
    assert refused.value.response.status_code == 403


async def test_silent_socket_closed_with_4408(tmp_path: Path, start_server: StartServer, ws_connect: Any) -> None:
    write_app(tmp_path, ', settings={"RAVYN_CHANNELS": {"AUTODISCOVER": [], "TOPICS_HEARTBEAT_TIMEOUT": 0.5}}')
    server = start_server("topics_app:app", cwd=tmp_path)
    async with ws_connect(f"{server.ws}/live", subprotocols=["ravyn.topics.v1"]) as ws:
        await ws.send(json.dumps({"topic": "ravyn", "event": "heartbeat", "ref": 1}))
        assert json.loads(await ws.recv())["payload"]["status"] == "ok"
        await asyncio.wait_for(ws.wait_closed(), 5)
        assert ws.close_code == 4408


async def test_server_restart_rejoins_without_duplicates(tmp_path: Path, start_server: StartServer) -> None:
    write_app(tmp_path)
    port = free_port()
    server = start_server("topics_app:app", cwd=tmp_path, port=port)
    socket = Socket(f"{server.ws}/live", backoff=lambda attempt: 0.2)
    await socket.connect()
    try:
        room = socket.channel("room:8")
        await room.join({"nick": "bot"})
        server.stop()
        await asyncio.sleep(0.5)
        assert not socket.connected
        again = start_server("topics_app:app", cwd=tmp_path, port=port)
        await socket.wait_connected(timeout=10)
        for _ in range(100):
            if room.joins == 2:
                break
            await asyncio.sleep(0.05)
        assert room.joins == 2 and room.state == "joined" and socket.connections == 2
        assert again.log().count("JOINED 8") == 1
        assert await room.push("message", {"text": "back"}) == {"sent": "back"}
    finally:
        await socket.close()


@pytest.mark.redis
async def test_topic_broadcast_and_presence_across_two_processes(
    redis_ready: None, tmp_path: Path, start_server: StartServer
) -> None:
    write_app(tmp_path)
    write_redis_settings(tmp_path)
    a = start_server("topics_app:app", cwd=tmp_path, settings="redis_settings")
    b = start_server("topics_app:app", cwd=tmp_path, settings="redis_settings")
    async with Socket(f"{a.ws}/live") as on_a, Socket(f"{b.ws}/live") as on_b:
        await on_a.channel("room:9").join()
        await on_b.channel("room:9").join()
        await asyncio.sleep(0.3)
        assert await on_a.channel("room:9").push("message", {"text": "from A"}) == {"sent": "from A"}
        assert (await on_b.channel("room:9").receive("message"))["payload"] == {"text": "from A"}
        await on_b.channel("room:9").push("message", {"text": "from B"})
        assert (await on_a.channel("room:9").receive("message"))["payload"] == {"text": "from B"}
        for _ in range(60):
            if len(on_a.channel("room:9").presence) == 2 and len(on_b.channel("room:9").presence) == 2:
                break
            await asyncio.sleep(0.05)
        assert len(on_a.channel("room:9").presence) == 2 and len(on_b.channel("room:9").presence) == 2


async def test_client_heartbeats_keep_a_quiet_socket_open(tmp_path: Path, start_server: StartServer) -> None:
    write_app(tmp_path, ', settings={"RAVYN_CHANNELS": {"AUTODISCOVER": [], "TOPICS_HEARTBEAT_TIMEOUT": 0.6}}')
    server = start_server("topics_app:app", cwd=tmp_path)
    async with Socket(f"{server.ws}/live", heartbeat=0.2) as socket:
        room = socket.channel("room:10")
        await room.join()
        await asyncio.sleep(2.0)  # three heartbeat windows with nothing but heartbeats
        assert socket.connected and socket.connections == 1
        assert await room.push("message", {"text": "awake"}) == {"sent": "awake"}
    assert "4408" not in server.log()
