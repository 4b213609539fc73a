"""ConnectionManager with the in-memory layer (one process), through the test client."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from ravyn_channels import ChannelsGroup, ConnectionManager, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.hub import _hub
from ravyn_channels.manager import BroadcastMixin, broadcast_event, group_name
from ravyn_channels.rooms import private_group
from ravyn_channels.testing import connect

pytestmark = pytest.mark.django_db

manager = ConnectionManager("tests.chat")


@websocket("/chat/{room}")
async def chat(websocket: WebSocket, room: str) -> None:
    await manager.connect(websocket, group=room)
    try:
        while True:
            data = await websocket.receive_text()
            if data.startswith("all:"):
                await manager.broadcast(data[4:])
            elif data.startswith("others:"):
                await manager.broadcast(data[7:], group=room, exclude=websocket)
            elif data.startswith("json:"):
                await manager.broadcast({"room": room, "text": data[5:]}, group=room)
            elif data.startswith("bytes:"):
                await manager.broadcast(data[6:].encode(), group=room)
            elif data.startswith("me:"):
                await manager.send_personal_message(data[3:], websocket)
            elif data == "id":
                await manager.send_personal_message(websocket.connection_id or "", websocket)
            else:
                await manager.broadcast(f"{room}: {data}", group=room)
    except WebSocketDisconnect:
        manager.disconnect(websocket)


async def test_room_broadcast_reaches_members_only() -> None:
    async with connect(chat, "/chat/a") as a1, connect(chat, "/chat/a") as a2, connect(chat, "/chat/b") as b1:
        await a1.send_text("hello")
        assert await a1.receive_text() == "a: hello"
        assert await a2.receive_text() == "a: hello"
        assert await b1.receive_nothing(0.1)


async def test_broadcast_without_group_reaches_everyone() -> None:
    async with connect(chat, "/chat/a") as a1, connect(chat, "/chat/b") as b1:
        await a1.send_text("all:hey")
        assert await a1.receive_text() == "hey"
        assert await b1.receive_text() == "hey"


async def test_exclude_sender() -> None:
    async with connect(chat, "/chat/x") as x1, connect(chat, "/chat/x") as x2:
        await x1.send_text("others:psst")
        assert await x2.receive_text() == "psst"
        assert await x1.receive_nothing(0.1)


async def test_json_and_bytes_frames() -> None:
    async with connect(chat, "/chat/j") as j1:
        await j1.send_text("json:hi")
        assert await j1.receive_json() == {"room": "j", "text": "hi"}
        await j1.send_text("bytes:raw")
        assert await j1.receive_bytes() == b"raw"


async def test_personal_message_by_socket_and_by_id() -> None:
    async with connect(chat, "/chat/p") as p1, connect(chat, "/chat/p") as p2:
        await p1.send_text("me:only me")
        assert await p1.receive_text() == "only me"
        await p2.send_text("id")
        p2_id = await p2.receive_text()
        assert "#" in p2_id
        await manager.send_personal_message("by id", p2_id)
        assert await p2.receive_text() == "by id"
        assert await p1.receive_nothing(0.1)


async def test_active_connections_follow_joins_and_leaves() -> None:
    async with connect(chat, "/chat/c") as c1:
        await c1.send_text("me:sync")  # the handler is connected once this round trip is done
        await c1.receive_text()
        assert len(manager.active_connections) == 1
    assert manager.active_connections == []


async def test_connection_leaves_rooms_even_when_handler_forgets() -> None:
    forgetful = ConnectionManager("tests.forgetful")

    @websocket("/forget")
    async def forget(websocket: WebSocket) -> None:
        await forgetful.connect(websocket, group="room")
        await websocket.receive_text()  # raises WebSocketDisconnect; no disconnect() call

    async with connect(forget, "/forget") as ws:
        await ws.send_text("x")
    assert forgetful.active_connections == []


async def test_connection_leaves_rooms_when_handler_raises() -> None:
    crashing = ConnectionManager("tests.crashing")

    @websocket("/crash")
    async def crash(websocket: WebSocket) -> None:
        await crashing.connect(websocket, group="room")
        await websocket.receive_text()
        raise RuntimeError("bug")

    async with connect(crash, "/crash") as ws:
        await ws.send_text("x")
        assert await ws.wait_closed() == 1011
    assert crashing.active_connections == []


async def test_disconnect_can_be_awaited_and_from_one_room() -> None:
    m = ConnectionManager("tests.await")
    done = asyncio.Event()

    @websocket("/aw/{room}")
    async def aw(websocket: WebSocket, room: str) -> None:
        await m.connect(websocket, group=room)
        await websocket.receive_text()
        await m.disconnect(websocket, group=room)
        done.set()
        await websocket.receive_text()

    async with connect(aw, "/aw/r1") as ws:
        await ws.send_text("leave")
        await done.wait()
        assert m.active_connections != []
        await m.broadcast("to r1", group="r1")
        assert await ws.receive_nothing(0.1)
        await m.broadcast("to all")
        assert await ws.receive_text() == "to all"


async def test_broadcast_sync_from_thread() -> None:
    async with connect(chat, "/chat/s") as s1:
        await s1.send_text("me:ready")
        await s1.receive_text()
        await asyncio.to_thread(manager.broadcast_sync, "from a view", "s")
        assert await s1.receive_text() == "from a view"


class PlainConsumer(BroadcastMixin, AsyncWebsocketConsumer):
    """Reaches the manager's own room "lobby" explicitly, by the manager's group name."""

    groups = [manager.group_name("lobby")]  # noqa: RUF012  (Channels' own API is a class attribute)

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        name = manager.group_name("lobby")
        await self.channel_layer.group_send(name, broadcast_event(f"plain: {text_data}", name))


async def test_plain_consumer_and_manager_share_a_room() -> None:
    plain = WebsocketCommunicator(PlainConsumer.as_asgi(), "/plain")
    assert (await plain.connect())[0]
    async with connect(chat, "/chat/lobby") as ours:
        await ours.send_text("from ours")
        assert await ours.receive_text() == "lobby: from ours"
        assert await plain.receive_from() == "lobby: from ours"
        await plain.send_to(text_data="hi")
        assert await ours.receive_text() == "plain: hi"
        assert await plain.receive_from() == "plain: hi"
    await plain.disconnect()


other = ConnectionManager("tests.chat.other")
shared = ConnectionManager("tests.chat.shared")


@websocket("/other/{room}")
async def other_chat(websocket: WebSocket, room: str) -> None:
    await other.connect(websocket, group=room)
    async for data in websocket.iter_text():
        await other.broadcast(f"other {room}: {data}", group=room)


@websocket("/shared")
async def shared_chat(websocket: WebSocket) -> None:
    await shared.connect(websocket, group=ChannelsGroup("notifications"))
    async for data in websocket.iter_text():
        await shared.broadcast(f"shared: {data}", group=ChannelsGroup("notifications"))


async def test_rooms_of_two_managers_with_the_same_name_are_separate() -> None:
    async with connect(chat, "/chat/staff") as ours, connect(other_chat, "/other/staff") as theirs:
        await ours.send_text("secret")
        assert await ours.receive_text() == "staff: secret"
        await theirs.send_text("hello")
        assert await theirs.receive_text() == "other staff: hello"
        assert await ours.receive_nothing(0.2) and await theirs.receive_nothing(0.2)
    assert manager.group_name("staff") != other.group_name("staff")


class Notifications(AsyncWebsocketConsumer):
    """A hand-written consumer of group "notifications" that knows nothing of ravyn_channels."""

    groups = ["notifications"]  # noqa: RUF012

    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        await self.send(text_data=f"pong {text_data}")


async def test_a_room_named_like_a_plain_group_does_not_reach_it() -> None:
    plain = WebsocketCommunicator(Notifications.as_asgi(), "/plain")
    assert (await plain.connect())[0]
    async with connect(chat, "/chat/notifications") as ours:
        await ours.send_text("hi")
        assert await ours.receive_text() == "notifications: hi"
        assert await plain.receive_nothing(0.2)
        await plain.send_to(text_data="ping")
        assert await plain.receive_from() == "pong ping"  # not crashed
    await plain.disconnect()


class SharedNotifications(BroadcastMixin, Notifications):
    async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
        await self.channel_layer.group_send("notifications", broadcast_event(f"plain: {text_data}", "notifications"))


async def test_a_channels_group_is_shared_with_plain_consumers_explicitly() -> None:
    plain = WebsocketCommunicator(SharedNotifications.as_asgi(), "/plain")
    assert (await plain.connect())[0]
    async with connect(shared_chat, "/shared") as ours:
        await ours.send_text("hi")
        assert await ours.receive_text() == "shared: hi"
        assert await plain.receive_from() == "shared: hi"
        await plain.send_to(text_data="yo")
        assert await ours.receive_text() == "plain: yo"
        assert await plain.receive_from() == "plain: yo"
    await plain.disconnect()
    assert shared.group_name(ChannelsGroup("notifications")) == "notifications"


@pytest.mark.parametrize("name", ["", "with space", "é", "x" * 100, "ravyn.mine"])
def test_channels_group_must_be_a_valid_name_outside_ours(name: str) -> None:
    with pytest.raises(ValueError, match=r"ChannelsGroup\("):
        ChannelsGroup(name)


@pytest.mark.parametrize(
    "room",
    ["lobby", "Ünïcode room", "with spaces", "x" * 300, "", "ravyn.lobby", "a/b", "😀"],
)
@pytest.mark.parametrize("owner", ["tests.chat", "m" * 200, "ünï côdé", ""])
def test_group_name_is_valid_and_deterministic(room: str, owner: str) -> None:
    layer = get_channel_layer()
    name = group_name(room, owner)
    assert layer.require_valid_group_name(name)
    assert group_name(room, owner) == name == ConnectionManager(owner).group_name(room)
    assert layer.require_valid_group_name(private_group(name))


def test_group_names_do_not_collide() -> None:
    rooms = ["lobby", "Lobby", "lobby ", "ravyn.lobby", "x" * 300, "x" * 301, "é", "e", "", "😀", "😁", "a:b"]
    owners = ["a", "a:b", "b", "tests.chat"]
    names = {group_name(r, m) for r in rooms for m in owners}
    assert len(names) == len(rooms) * len(owners)
    assert not names & {private_group(n) for n in names}


def test_group_name_needs_the_manager() -> None:
    with pytest.raises(TypeError, match=r"needs the manager the room belongs to: .*manager.group_name\(room\)"):
        group_name("lobby")
    assert group_name(ChannelsGroup("chat_lobby-1.x")) == "chat_lobby-1.x"


def test_group_name_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="Room names are str"):
        group_name(3, "m")  # type: ignore[arg-type]


def test_broadcast_event_names_its_group() -> None:
    assert broadcast_event("hi", "notifications") == {"type": "ravyn.broadcast", "group": "notifications", "text": "hi"}
    assert broadcast_event(b"x", ChannelsGroup("n"))["group"] == "n"
    with pytest.raises(ValueError, match=r"manager.group_name\(room\)"):
        broadcast_event("hi", "salle de réunion")


async def test_leaving_always_discards_on_the_layer_even_if_the_record_was_lost() -> None:
    """Issue 20: a reader failure used to clear the record of joined groups, and leaving then kept the membership."""
    layer = get_channel_layer()
    async with connect(chat, "/chat/drift") as ws:
        await ws.send_text("id")
        await ws.receive_text()
        hub = await _hub("default")
        name = manager.group_name("drift")
        assert hub.channel in layer.groups.get(name, {})
        hub.joined.clear()  # what a failed read did
    for _ in range(50):
        if hub.channel not in layer.groups.get(name, {}):
            break
        await asyncio.sleep(0.02)
    assert hub.channel not in layer.groups.get(name, {})


def test_default_manager_name_is_module() -> None:
    # In a module of its own, so that no other test's unnamed manager counts.
    module = f"tests.fresh_{uuid.uuid4().hex}"
    namespace: dict[str, Any] = {"__name__": module, "ConnectionManager": ConnectionManager}
    exec("first = ConnectionManager()\nsecond = ConnectionManager()", namespace)
    assert namespace["first"].name == module
    assert namespace["second"].name == f"{module}:1"


async def test_unserialisable_broadcast_is_explained() -> None:
    with pytest.raises(TypeError, match="Cannot broadcast object"):
        await manager.broadcast(object())
