"""Presence with the in-memory layer (one process), through the test client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from ravyn_channels import ConnectionManager, Member, OnlineUser, WebSocket, websocket
from ravyn_channels.conf import get_settings
from ravyn_channels.manager import _hub
from ravyn_channels.presence import PRESENCE, member_id, timings
from ravyn_channels.presence.tracker import GAP_WAIT
from ravyn_channels.testing import connect

pytestmark = pytest.mark.django_db

pm = ConnectionManager("tests.presence", presence=True)
plain = ConnectionManager("tests.presence.plain")

T = TypeVar("T")


@websocket("/p/{room}")
async def room_socket(websocket: WebSocket, room: str) -> None:
    """``?nick=`` becomes meta; ``?watch=1`` subscribes to the room's presence, ``?watch=all`` to the manager's."""
    nick = websocket.query_params.get("nick")
    watch = websocket.query_params.get("watch")
    await pm.connect(websocket, group=room, meta={"nick": nick} if nick else None, presence=watch == "1")
    if watch == "all":
        await pm.connect(websocket, presence=True)
    async for text in websocket.iter_text():
        if text == "id":
            await websocket.send_text(websocket.connection_id or "")
        elif text == "leave":
            await pm.disconnect(websocket, group=room)
            await websocket.send_text("left")


@websocket("/plain")
async def plain_socket(websocket: WebSocket) -> None:
    await plain.connect(websocket)
    async for _ in websocket.iter_text():
        pass


def room() -> str:
    return f"room {uuid.uuid4().hex[:8]}"


def as_user(pk: int, username: str) -> dict[str, Any]:
    return {"user": User(pk=pk, username=username)}


async def _async(value: T) -> T:
    return value


async def eventually(read: Callable[[], Awaitable[T]], expected: T, timeout: float = 5.0) -> T:
    """Poll ``read`` until it returns ``expected`` (bounded); returns the last value."""
    deadline = time.monotonic() + timeout
    value = await read()
    while value != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
        value = await read()
    return value


async def ready(ws: Any) -> str:
    """The socket's connection id, once its handler has connected it."""
    await ws.send_text("id")
    return str(await ws.receive_text())


# -- count, members, users -------------------------------------------------------------------


async def test_count_members_and_manager_wide_count() -> None:
    r1, r2 = room(), room()
    before = await pm.count()
    async with connect(room_socket, f"/p/{r1}?nick=ada") as a, connect(room_socket, f"/p/{r1}") as b:
        async with connect(room_socket, f"/p/{r2}") as c:
            ids = [await ready(ws) for ws in (a, b, c)]
            assert await pm.count(r1) == 2
            assert await pm.count(r2) == 1
            assert await pm.count() == before + 3
            members = await pm.members(r1)
            assert [m.connection_id for m in members] == ids[:2]  # oldest first
            assert members[0].meta == {"nick": "ada"} and members[1].meta == {}
            assert all(isinstance(m, Member) and m.user_id is None and m.joined_at > 0 for m in members)
        assert await eventually(lambda: pm.count(r2), 0) == 0
        assert await pm.count(r1) == 2
    assert await eventually(lambda: pm.count(r1), 0) == 0
    assert await eventually(pm.count, before) == before


async def test_users_are_distinct_logged_in_users() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}", scope=as_user(7, "ada")) as a1, connect(
        room_socket, f"/p/{r}", scope=as_user(7, "ada")
    ) as a2, connect(room_socket, f"/p/{r}", scope=as_user(3, "bob")) as b, connect(room_socket, f"/p/{r}") as anon:
        ids = [await ready(ws) for ws in (a1, a2, b, anon)]
        assert await pm.users(r) == [
            OnlineUser("7", "ada", (ids[0], ids[1])),
            OnlineUser("3", "bob", (ids[2],)),
        ]
        assert {(m.user_id, m.username) for m in await pm.members(r)} == {("7", "ada"), ("3", "bob"), (None, None)}


async def test_disconnect_from_one_room_leaves_its_presence_only() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}") as ws:
        await ready(ws)
        total = await pm.count()
        await ws.send_text("leave")
        assert await ws.receive_text() == "left"
        assert await pm.count(r) == 0
        assert await pm.count() == total  # still connected through the manager


async def test_sync_variants_from_a_thread() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}?nick=sync", scope=as_user(11, "cy")) as ws:
        cid = await ready(ws)
        assert await asyncio.to_thread(pm.count_sync, r) == 1
        [member] = await asyncio.to_thread(pm.members_sync, r)
        assert (member.connection_id, member.meta) == (cid, {"nick": "sync"})
        assert await asyncio.to_thread(pm.users_sync, r) == [OnlineUser("11", "cy", (cid,))]


async def test_reading_needs_a_presence_manager() -> None:
    with pytest.raises(RuntimeError, match=r"ConnectionManager\('tests.presence.plain', presence=True\)"):
        await plain.count("lobby")


async def test_connect_options_need_a_presence_manager() -> None:
    failures: list[BaseException] = []

    @websocket("/needs")
    async def needs(websocket: WebSocket) -> None:
        try:
            await plain.connect(websocket, meta={"x": 1})
        except RuntimeError as exc:
            failures.append(exc)
        await websocket.accept()

    async with connect(needs, "/needs"):
        pass
    assert "connect(meta=..., presence=...) needs presence" in str(failures[0])


async def test_meta_must_be_json() -> None:
    failures: list[BaseException] = []

    @websocket("/badmeta")
    async def badmeta(websocket: WebSocket) -> None:
        try:
            await pm.connect(websocket, meta={"when": object()})
        except TypeError as exc:
            failures.append(exc)
        await websocket.accept()

    async with connect(badmeta, "/badmeta"):
        pass
    assert "connect(meta=...) must be JSON-serialisable" in str(failures[0])


async def test_plain_manager_pays_nothing_for_presence() -> None:
    async with connect(plain_socket, "/plain") as ws:
        await ws.send_text("x")
        hub = await _hub(get_settings().CHANNEL_LAYER)
        assert hub.presence is None  # no store, no heartbeat, no events on this loop


# -- presence events -------------------------------------------------------------------------


async def frames(ws: Any, n: int) -> list[dict[str, Any]]:
    return [json.loads(await ws.receive_text()) for _ in range(n)]


async def test_state_on_join_then_one_diff_per_change_in_order() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}?watch=1&nick=w") as watcher:
        [state] = await frames(watcher, 1)
        assert state["type"] == "presence_state" and state["room"] == r
        [(wid, winfo)] = state["members"].items()
        assert winfo == {"meta": {"nick": "w"}}  # only what the application published
        async with connect(room_socket, f"/p/{r}?nick=a") as a:
            aid = member_id(await ready(a))
            async with connect(room_socket, f"/p/{r}", scope=as_user(5, "bo")) as b:
                bid = member_id(await ready(b))
        raw = [await watcher.receive_text() for _ in range(4)]
        diffs = [json.loads(text) for text in raw]
        assert [(d["type"], list(d["joins"]), list(d["leaves"])) for d in diffs] == [
            ("presence_diff", [aid], []),
            ("presence_diff", [bid], []),
            ("presence_diff", [], [bid]),
            ("presence_diff", [], [aid]),
        ]
        assert [d["seq"] for d in diffs] == [state["seq"] + i for i in range(1, 5)]
        assert diffs[1]["joins"][bid] == {"meta": {}} and diffs[3]["leaves"][aid]["meta"] == {"nick": "a"}
        # Nothing of the server or of the user: no channel name, no user id, no username.
        assert not any(word in text for text in raw for word in ("specific.", '"5"', "bo\"", "user_id", "#"))
        assert await watcher.receive_nothing(0.2)
    assert wid


async def test_room_events_stay_in_their_room() -> None:
    r, other = room(), room()
    async with connect(room_socket, f"/p/{r}?watch=1") as watcher:
        await frames(watcher, 1)
        async with connect(room_socket, f"/p/{other}") as ws:
            await ready(ws)
        assert await watcher.receive_nothing(0.2)


async def test_manager_wide_subscription() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}?watch=all") as watcher:
        [state] = await frames(watcher, 1)
        assert state["type"] == "presence_state" and state["room"] is None
        async with connect(room_socket, f"/p/{room()}") as other:
            oid = member_id(await ready(other))
        joined, left = await frames(watcher, 2)
        assert list(joined["joins"]) == [oid] and list(left["leaves"]) == [oid]


async def test_callback_subscription() -> None:
    r = room()
    got: list[dict[str, Any]] = []

    async def on_presence(event: dict[str, Any]) -> None:
        got.append(event)

    @websocket("/cb/{room}")
    async def cb(websocket: WebSocket, room: str) -> None:
        await pm.connect(websocket, group=room, presence=on_presence)
        async for _ in websocket.iter_text():
            pass

    async with connect(cb, f"/cb/{r}") as ws:
        await ws.send_text("x")
        async with connect(room_socket, f"/p/{r}") as other:
            oid = await ready(other)
        await eventually(lambda: _len(got), 3)
        assert [e["type"] for e in got] == ["presence_state", "presence_diff", "presence_diff"]
        assert list(got[1]["joins"]) == [oid] and list(got[2]["leaves"]) == [oid]
        assert await ws.receive_nothing(0.1)  # frames go to the callback, not to the socket


async def _len(items: list[Any]) -> int:
    return len(items)


async def test_changes_arriving_out_of_order_are_delivered_in_order() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}?watch=1") as watcher:
        [state] = await frames(watcher, 1)
        tracker = (await _hub(get_settings().CHANNEL_LAYER)).presence
        assert tracker is not None
        group, seq = pm.group_name(r), state["seq"]
        event = {"type": PRESENCE, "group": group, "origin": "elsewhere", "leaves": {}}
        tracker.receive({**event, "seq": seq + 2, "joins": {"x2": {"meta": {}}}})
        tracker.receive({**event, "seq": seq + 1, "joins": {"x1": {"meta": {}}}})
        tracker.receive({**event, "seq": seq + 1, "joins": {"x1": {"meta": {}}}})  # a duplicate
        first, second = await frames(watcher, 2)
        assert (list(first["joins"]), first["seq"]) == ([member_id("x1")], seq + 1)
        assert (list(second["joins"]), second["seq"]) == ([member_id("x2")], seq + 2)
        assert await watcher.receive_nothing(0.2)


async def test_a_lost_change_is_repaired_from_the_store() -> None:
    r = room()
    async with connect(room_socket, f"/p/{r}?watch=1") as watcher:
        await frames(watcher, 1)
        hub = await _hub(get_settings().CHANNEL_LAYER)
        tracker = hub.presence
        assert tracker is not None
        group = pm.group_name(r)
        # Two members join the store; only the second change's event arrives.
        lost = await tracker.backend.join({group: {"lost": {"meta": {"n": 1}}}})
        seen = await tracker.backend.join({group: {"seen": {"meta": {"n": 2}}}})
        tracker.receive({"type": PRESENCE, "group": group, "seq": seen[group].seq, "joins": seen[group].members})
        [diff] = await frames(watcher, 1)  # after GAP_WAIT: one diff with both, nothing twice
        assert diff["type"] == "presence_diff" and sorted(diff["joins"]) == sorted(map(member_id, ["lost", "seen"]))
        assert diff["seq"] == seen[group].seq and lost[group].seq == seen[group].seq - 1
        assert await watcher.receive_nothing(GAP_WAIT + 0.3)
        await tracker.backend.leave({group: ["lost", "seen"]})


# -- send_to_user ----------------------------------------------------------------------------


async def test_send_to_user_reaches_every_connection_of_that_user_only() -> None:
    r = room()
    ada = User(pk=21, username="ada")
    async with connect(room_socket, f"/p/{r}", scope={"user": ada}) as a1, connect(
        room_socket, f"/p/{room()}", scope=as_user(21, "ada")
    ) as a2, connect(room_socket, f"/p/{r}", scope=as_user(22, "bob")) as b, connect(room_socket, f"/p/{r}") as anon:
        for ws in (a1, a2, b, anon):
            await ready(ws)
        await pm.send_to_user(ada, {"hello": "ada"})
        assert [await ws.receive_json() for ws in (a1, a2)] == [{"hello": "ada"}] * 2
        await pm.send_to_user(22, "by pk")
        assert await b.receive_text() == "by pk"
        await asyncio.to_thread(pm.send_to_user_sync, "21", "from a view")
        assert [await ws.receive_text() for ws in (a1, a2)] == ["from a view"] * 2
        assert await b.receive_nothing(0.1) and await anon.receive_nothing(0.1)
        assert await a1.receive_nothing(0.05)


async def test_send_to_user_works_without_presence_and_forgets_closed_connections() -> None:
    @websocket("/u")
    async def u(websocket: WebSocket) -> None:
        await plain.connect(websocket)
        async for _ in websocket.iter_text():
            pass

    async with connect(u, "/u", scope=as_user(31, "dee")) as ws:
        hub = await _hub(get_settings().CHANNEL_LAYER)
        assert await eventually(lambda: _async("31" in hub.by_user.get(plain.group_name(), {})), True)
        await plain.send_to_user(31, "hi dee")
        assert await ws.receive_text() == "hi dee"
    # connect() returns once the application has finished, cleanups included
    assert "31" not in hub.by_user.get(plain.group_name(), {})


@pytest.mark.parametrize("bad", [None, True, object()])
async def test_send_to_user_explains_bad_users(bad: Any) -> None:
    with pytest.raises(TypeError, match="send_to_user"):
        await pm.send_to_user(bad, "x")


# -- manage.py ws_presence -------------------------------------------------------------------


async def test_ws_presence_command() -> None:
    from io import StringIO

    from django.core.management import call_command

    r = room()
    async with connect(room_socket, f"/p/{r}?nick=ada", scope=as_user(41, "ada")) as ws:
        ident = await ready(ws)
        out, err = StringIO(), StringIO()
        await asyncio.to_thread(call_command, "ws_presence", "--manager", "tests.presence", r, stdout=out, stderr=err)
        assert out.getvalue().startswith(f"1 connection in room {r!r} of manager 'tests.presence'\n")
        assert f"{ident}  ada (id 41)  joined " in out.getvalue() and '{"nick": "ada"}' in out.getvalue()
        assert "in-memory channel layer lives inside each server process" in err.getvalue()
        out = StringIO()
        await asyncio.to_thread(call_command, "ws_presence", "--json", stdout=out, stderr=StringIO())
        assert json.loads(out.getvalue())[pm.group_name(r)] == 1
        out = StringIO()
        await asyncio.to_thread(call_command, "ws_presence", "--manager", "tests.presence", "--json", stdout=out)
        assert ident in [row["connection_id"] for row in json.loads(out.getvalue())]


# -- settings, layers ------------------------------------------------------------------------


def test_ttl_timings() -> None:
    assert timings(30) == (22.5, 7.5)
    with pytest.raises(ValueError, match="PRESENCE_TTL must be a positive number"):
        timings(0)


def test_bad_ttl_is_a_system_check_error() -> None:
    from ravyn_channels.checks import check_settings

    with override_settings(RAVYN_CHANNELS={"PRESENCE_TTL": -1}):
        [error] = check_settings()
    assert error.id == "ravyn_channels.E004" and "-1" in error.msg


async def test_unsupported_layer_is_explained() -> None:
    from ravyn_channels.presence.store import open_backend

    with pytest.raises(RuntimeError, match="Presence needs a channels-redis layer"):
        open_backend(object(), 1.0)


async def test_broadcast_from_sync_code_still_arrives_past_group_expiry() -> None:
    layers = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"group_expiry": 1}}}
    with override_settings(CHANNEL_LAYERS=layers):
        r = room()
        async with connect(room_socket, f"/p/{r}") as ws:
            await ready(ws)
            await asyncio.sleep(2.5)  # the layer drops memberships older than 1 s unless renewed
            await asyncio.to_thread(pm.broadcast_sync, "still in the room", r)
            assert await ws.receive_text() == "still in the room"


# -- internal events stay off the rooms' groups ------------------------------------------------


async def test_plain_consumers_in_a_room_or_manager_group_get_broadcasts_only() -> None:
    """Issue 12: presence and user events travel on private groups; a BroadcastMixin consumer
    (which handles ravyn.broadcast and nothing else) would be closed 1011 by any other event."""
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.testing import WebsocketCommunicator

    from ravyn_channels.manager import BroadcastMixin

    r = room()

    class InRoom(BroadcastMixin, AsyncWebsocketConsumer):
        groups = [pm.group_name(r), pm.group_name()]  # noqa: RUF012

    plain_consumer = WebsocketCommunicator(InRoom.as_asgi(), "/plain")
    assert (await plain_consumer.connect())[0]
    async with connect(room_socket, f"/p/{r}?watch=1", scope=as_user(51, "ada")) as watcher:
        await frames(watcher, 1)  # presence_state
        async with connect(room_socket, f"/p/{r}", scope=as_user(52, "bob")):
            await frames(watcher, 1)  # bob's join
            await pm.send_to_user(52, "for bob")
        await frames(watcher, 1)  # bob's leave
        assert await plain_consumer.receive_nothing(0.3)
        await pm.broadcast("to the room", group=r)
        assert await plain_consumer.receive_from() == "to the room"
        assert await watcher.receive_text() == "to the room"
    assert await plain_consumer.receive_nothing(0.3)
    await plain_consumer.disconnect()


@websocket("/p-shared")
async def shared_socket(websocket: WebSocket) -> None:
    from ravyn_channels import ChannelsGroup

    await pm.connect(websocket, group=ChannelsGroup("presence-shared"))
    async for _ in websocket.iter_text():
        await websocket.send_text(websocket.connection_id or "")


async def test_ws_presence_needs_the_manager_of_a_room_and_reads_a_channels_group() -> None:
    from io import StringIO

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=r"Rooms belong to a manager: give --manager NAME ROOM .*'tests.presence'"):
        await asyncio.to_thread(call_command, "ws_presence", "lobby", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="--group NAME stands alone"):
        await asyncio.to_thread(call_command, "ws_presence", "--group", "g", "lobby", stderr=StringIO())
    async with connect(shared_socket, "/p-shared") as ws:
        ident = await ready(ws)
        out = StringIO()
        args = ("ws_presence", "--group", "presence-shared")
        await asyncio.to_thread(call_command, *args, stdout=out, stderr=StringIO())
        listing = out.getvalue()
        assert listing.startswith("1 connection in Channels group 'presence-shared'\n") and ident in listing


async def test_a_busy_big_room_merges_changes_into_fewer_diffs(monkeypatch: pytest.MonkeyPatch) -> None:
    """With >= BATCH_FROM subscribers, a burst of joins and leaves costs each watcher a few frames, not one
    per change, and every watcher still ends with the right members; joiners meanwhile get a consistent state."""
    from ravyn_channels.presence import tracker as tracker_module

    monkeypatch.setattr(tracker_module, "BATCH_FROM", 5)
    monkeypatch.setattr(tracker_module, "DIFF_FRAMES_PER_SECOND", 20)  # 5+ subscribers: a diff per 0.25 s at most
    r = room()
    async with contextlib.AsyncExitStack() as stack:
        watchers = [await stack.enter_async_context(connect(room_socket, f"/p/{r}?watch=1")) for _ in range(6)]
        views: list[dict[str, Any]] = [{} for _ in watchers]
        ids = []
        for i, w in enumerate(watchers):
            await w.send_text("id")
            while (text := await w.receive_text()).startswith("{"):
                views[i] = apply(views[i], json.loads(text))
            ids.append(member_id(text))
        for i, w in enumerate(watchers):  # the diffs that bring each watcher to the six of them
            while set(views[i]) != set(ids):
                views[i] = apply(views[i], json.loads(await w.receive_text()))
        for i in range(30):  # a burst: 30 clients come and go (60 changes)
            async with connect(room_socket, f"/p/{r}?watch=1&nick=n{i}") as brief:
                await ready(brief)
        late = await stack.enter_async_context(connect(room_socket, f"/p/{r}?nick=late"))
        late_id = member_id(await ready(late))
        counts = []
        for w, view in zip(watchers, views, strict=True):
            n = 0
            while set(view) != {*ids, late_id}:
                view = apply(view, json.loads(await w.receive_text(timeout=5)))
                n += 1
            counts.append(n)
        print("diffs per watcher for 61 changes:", counts)
        assert max(counts) < 30, counts  # one frame per change would be 61
        for w in watchers:
            assert await w.receive_nothing(0.3)


def apply(view: dict[str, Any], frame: dict[str, Any]) -> dict[str, Any]:
    if frame["type"] == "presence_state":
        return dict(frame["members"])
    assert frame["type"] == "presence_diff"
    for cid in frame["leaves"]:
        assert cid in view, f"{cid} left without having joined"
        del view[cid]
    for cid, info in frame["joins"].items():
        assert cid not in view, f"{cid} joined twice"
        view[cid] = info
    return view
