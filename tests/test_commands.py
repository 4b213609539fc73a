"""``manage.py ws_routes`` and ``manage.py ws_send`` (the latter through a real Redis layer)."""

from __future__ import annotations

import io
import json
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from django.core.management import CommandError, call_command
from django.test import override_settings

from ravyn_channels import Query, WebSocket, websocket
from ravyn_channels.layers import redis_channel_layer
from ravyn_channels.manager import ConnectionManager
from ravyn_channels.permissions import HasPerm, IsAuthenticated
from ravyn_channels.testing import connect
from tests.conftest import REDIS_URL, require_redis


@websocket("/cmd/feed/{room}", permissions=[IsAuthenticated, HasPerm("auth.view_user")], origins=["https://app.example"])
async def guarded_feed(websocket: WebSocket, room: str, page: int = Query(1)) -> None:
    await websocket.accept()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_ws_routes_table() -> None:
    lines = run("ws_routes").splitlines()
    assert lines[0].split() == ["PATH", "HANDLER", "MODULE", "PERMISSIONS", "ORIGINS"]
    [row] = [line for line in lines if line.startswith("/cmd/feed/{room} ")]
    assert row.split(None, 3)[:3] == ["/cmd/feed/{room}", "guarded_feed", "tests.test_commands"]
    assert "IsAuthenticated, HasPerm('auth.view_user')" in row
    assert row.endswith("https://app.example (route)")
    [discovered] = [line for line in lines if line.startswith("/discovered/{name} ")]
    assert "localhost, 127.0.0.1" in discovered and discovered.endswith("(ALLOWED_HOSTS)")


def test_ws_routes_json() -> None:
    routes = json.loads(run("ws_routes", "--json"))
    [feed] = [r for r in routes if r["path"] == "/cmd/feed/{room}"]
    assert feed == {
        "path": "/cmd/feed/{room}",
        "name": "guarded_feed",
        "handler": "guarded_feed",
        "module": "tests.test_commands",
        "permissions": ["IsAuthenticated", "HasPerm('auth.view_user')"],
        "origins": ["https://app.example"],
        "origins_from": "route",
        "parameters": {"websocket": "websocket", "room": "path", "page": "query:page"},
    }
    with override_settings(RAVYN_CHANNELS={"ORIGINS": ["https://.example"]}):
        [discovered] = [r for r in json.loads(run("ws_routes", "--json")) if r["path"] == "/discovered/{name}"]
    assert discovered["origins"] == ["https://.example"]
    assert discovered["origins_from"] == "RAVYN_CHANNELS['ORIGINS']"


def test_ws_send_refuses_the_in_memory_layer() -> None:
    with pytest.raises(CommandError, match="in-memory layer, which lives inside one process"):
        run("ws_send", "--manager", "chat.sockets", "lobby", "hi")


def test_ws_send_without_a_layer() -> None:
    with override_settings(CHANNEL_LAYERS={}), pytest.raises(CommandError, match="CHANNEL_LAYERS has no 'default'"):
        run("ws_send", "--manager", "chat.sockets", "lobby", "hi")


def test_ws_send_needs_the_manager_of_a_room() -> None:
    """Rooms belong to their manager: a bare room name is refused, naming the managers that exist."""
    known = ConnectionManager("tests.commands.known")  # noqa: F841  (the registry holds managers weakly)
    for args in (("lobby", "hi"), ("hi",)):
        with pytest.raises(CommandError, match=r"Rooms belong to a manager: give --manager NAME ROOM MESSAGE") as info:
            run("ws_send", *args)
        assert "'tests.commands.known'" in str(info.value) and "--group NAME MESSAGE" in str(info.value)
    with pytest.raises(CommandError, match="--group: ChannelsGroup"):
        run("ws_send", "--group", "no spaces allowed", "hi")
    with pytest.raises(CommandError, match="--group NAME takes only MESSAGE"):
        run("ws_send", "--group", "notifications", "lobby", "hi")


@pytest.fixture
def redis_layer() -> Any:
    """A private channels-redis layer (Redis must answer; under CI=true its absence fails)."""
    require_redis()
    prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
    with override_settings(CHANNEL_LAYERS={"default": redis_channel_layer(REDIS_URL, pubsub=False, prefix=prefix)}):
        from channels.layers import get_channel_layer

        yield get_channel_layer()


def listen(layer: Any, group: str) -> str:
    channel: str = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    return channel


def received(layer: Any, channel: str) -> dict[str, Any]:
    async def receive() -> dict[str, Any]:
        import asyncio

        return dict(await asyncio.wait_for(layer.receive(channel), 5))

    return async_to_sync(receive)()


@pytest.mark.redis
def test_ws_send_broadcasts_to_a_room(redis_layer: Any) -> None:
    channel = listen(redis_layer, ConnectionManager("chat.sockets").group_name("salle de réunion"))
    assert run("ws_send", "--manager", "chat.sockets", "salle de réunion", "bonjour").strip() == (
        "Sent to room 'salle de réunion' of manager 'chat.sockets' through CHANNEL_LAYERS['default']."
    )
    event = received(redis_layer, channel)
    assert event["type"] == "ravyn.broadcast" and event["text"] == "bonjour"


@pytest.mark.redis
def test_ws_send_to_a_shared_channels_group(redis_layer: Any) -> None:
    channel = listen(redis_layer, "notifications")
    assert run("ws_send", "--group", "notifications", "hello").strip() == (
        "Sent to Channels group 'notifications' through CHANNEL_LAYERS['default']."
    )
    assert received(redis_layer, channel) == {"type": "ravyn.broadcast", "group": "notifications", "text": "hello"}


@pytest.mark.redis
def test_ws_send_json_and_manager_default_group(redis_layer: Any) -> None:
    channel = listen(redis_layer, ConnectionManager("chat.sockets").group_name())
    run("ws_send", "--manager", "chat.sockets", "--json", '{"kind": "notice", "n": 1}')
    assert json.loads(received(redis_layer, channel)["text"]) == {"kind": "notice", "n": 1}
    with pytest.raises(CommandError, match="--json: MESSAGE is not valid JSON"):
        run("ws_send", "--manager", "chat.sockets", "lobby", "--json", "{nope")


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_ws_send_json_refuses_nan_and_infinity(constant: str) -> None:
    redis = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}  # refused before any connection
    with override_settings(CHANNEL_LAYERS=redis), pytest.raises(
        CommandError, match=rf"--json: MESSAGE is not valid JSON \({constant} is not JSON .*send null or a string"
    ):
        run("ws_send", "--manager", "chat.sockets", "lobby", "--json", f'{{"temperature": {constant}}}')


@pytest.mark.django_db
async def test_ws_presence_escapes_control_and_bidi_characters() -> None:
    import asyncio

    from tests.test_presence import ready, room_socket

    room = f"bidi {uuid.uuid4().hex[:8]}"
    nick = "eve\u202egpj.exe\u2066\x1b[2J"
    async with connect(room_socket, f"/p/{room}?nick={quote(nick)}") as ws:
        await ready(ws)
        out = io.StringIO()
        args = ("ws_presence", "--manager", "tests.presence", room)
        await asyncio.to_thread(call_command, *args, stdout=out, stderr=io.StringIO())
        table = out.getvalue()
        out = io.StringIO()
        await asyncio.to_thread(call_command, *args, "--json", stdout=out, stderr=io.StringIO())
        listing = out.getvalue()
    assert not any(c in table + listing for c in "\u202e\u2066\x1b")
    assert '{"nick": "eve\\u202egpj.exe\\u2066\\u001b[2J"}' in table
    assert json.loads(listing)[0]["meta"] == {"nick": nick}  # the same data, escaped JSON
