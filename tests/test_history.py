"""Room history with the in-memory layer (one process): positions, resume, resync, latest value, history()."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from ravyn_channels import ConnectionManager, WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.history import HistoryConfig, HistoryUnavailable, Position, json_envelope
from ravyn_channels.history.store import Limits, MemoryHistory
from ravyn_channels.hub import _hub
from ravyn_channels.testing import connect

pytestmark = pytest.mark.django_db

manager = ConnectionManager("tests.history", history=HistoryConfig(max_messages=50, max_age=60))
plain = ConnectionManager("tests.history.plain")
latest = ConnectionManager("tests.history.latest", history=HistoryConfig.latest())
mixed = ConnectionManager("tests.history.mixed", history={"kept": HistoryConfig(max_messages=5)})


async def serve(mgr: ConnectionManager, ws: WebSocket, room: str) -> None:
    since = ws.query_params.get("since")
    await mgr.connect(ws, group=room, since=since)
    try:
        async for data in ws.iter_text():
            if data.startswith("json:"):
                await mgr.broadcast({"n": data[5:]}, group=room)
            elif data.startswith("bytes:"):
                await mgr.broadcast(data[6:].encode(), group=room)
            elif data.startswith("others:"):
                await mgr.broadcast(data[7:], group=room, exclude=ws)
            else:
                await mgr.broadcast(data, group=room)
    except WebSocketDisconnect:
        pass


@websocket("/h/{room}")
async def kept(websocket: WebSocket, room: str) -> None:
    await serve(manager, websocket, room)


@websocket("/p/{room}")
async def unkept(websocket: WebSocket, room: str) -> None:
    await serve(plain, websocket, room)


@websocket("/l/{room}")
async def last(websocket: WebSocket, room: str) -> None:
    await serve(latest, websocket, room)


@websocket("/m/{room}")
async def some(websocket: WebSocket, room: str) -> None:
    await serve(mixed, websocket, room)


async def receive(session: Any) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await session.receive_text())
    return frame


async def test_broadcasts_carry_increasing_positions_in_an_envelope() -> None:
    async with connect(kept, "/h/env") as a, connect(kept, "/h/env") as b:
        await a.send_text("one")
        await a.send_text("json:2")
        await a.send_text("bytes:three")
        frames = [await receive(b) for _ in range(3)]
        assert [f["type"] for f in frames] == ["message"] * 3
        assert [f["room"] for f in frames] == ["env"] * 3
        assert frames[0]["data"] == "one" and frames[1]["data"] == {"n": "2"}
        assert frames[2] == {**frames[2], "data": "dGhyZWU=", "encoding": "base64"}
        positions = [Position.parse(f["position"]) for f in frames]
        assert len({p.epoch for p in positions}) == 1
        assert [p.offset for p in positions] == [1, 2, 3]
        assert [await receive(a) for _ in range(3)] == frames


async def test_rooms_without_history_keep_their_frames() -> None:
    async with connect(unkept, "/p/x") as a, connect(some, "/m/other") as b:
        await a.send_text("plain")
        assert await a.receive_text() == "plain"
        await b.send_text("also plain")
        assert await b.receive_text() == "also plain"
    async with connect(some, "/m/kept") as c:
        await c.send_text("kept")
        assert (await receive(c))["data"] == "kept"


async def test_resume_sends_every_missed_message_once_then_live_ones() -> None:
    async with connect(kept, "/h/resume") as sender:
        async with connect(kept, "/h/resume") as first:
            await sender.send_text("m1")
            got = await receive(first)
            assert got["data"] == "m1"
            await receive(sender)
        for i in range(2, 6):
            await sender.send_text(f"m{i}")
            await receive(sender)
        async with connect(kept, f"/h/resume?since={got['position']}") as back:
            await sender.send_text("m6")
            frames = [await receive(back) for _ in range(5)]
            assert [f["data"] for f in frames] == ["m2", "m3", "m4", "m5", "m6"]
            assert await back.receive_nothing(0.1)


async def test_broadcasts_during_the_replay_are_neither_lost_nor_repeated() -> None:
    async with connect(kept, "/h/race") as sender:
        for i in range(1, 21):
            await sender.send_text(f"m{i}")
        for _ in range(20):
            await receive(sender)
        start = Position.parse((await manager.history("race", limit=0)).position)

        async def burst() -> None:
            for i in range(21, 41):
                await manager.broadcast(f"m{i}", group="race")
                await asyncio.sleep(0)

        task = asyncio.ensure_future(burst())
        async with connect(kept, f"/h/race?since={Position(start.epoch, 10)}") as back:
            await task
            frames = [await receive(back) for _ in range(30)]
            assert [f["data"] for f in frames] == [f"m{i}" for i in range(11, 41)]
            assert await back.receive_nothing(0.1)


@pytest.mark.parametrize(
    ("since", "reason"),
    [
        ("garbage", "malformed"),
        ("ffff:1", "epoch"),
        ("{epoch}:99", "future"),
        ("x:y:z", "malformed"),
        ("{epoch}:-1", "malformed"),
    ],
)
async def test_positions_that_cannot_be_continued_get_a_resync(since: str, reason: str) -> None:
    page = await manager.history("bad")
    if page.head.offset == 0:
        await manager.broadcast("first", group="bad")
        page = await manager.history("bad")
    async with connect(kept, f"/h/bad?since={since.format(epoch=page.head.epoch)}") as ws:
        frame = await receive(ws)
        assert frame == {"type": "resync", "room": "bad", "position": str(page.head), "reason": reason}
        await ws.send_text("after")
        assert (await receive(ws))["position"] == f"{page.head.epoch}:{page.head.offset + 1}"


async def test_a_position_older_than_the_history_gets_a_resync() -> None:
    async with connect(kept, "/h/old") as sender:
        for i in range(60):  # max_messages is 50
            await sender.send_text(f"m{i}")
            first = await receive(sender)
            if i == 0:
                position = first["position"]
    async with connect(kept, f"/h/old?since={position}") as back:
        assert (await receive(back))["reason"] == "expired"


async def test_latest_value_room_sends_its_last_message_to_every_joiner() -> None:
    async with connect(last, "/l/score") as sender:
        await sender.send_text("1-0")
        await sender.send_text("2-0")
        await receive(sender)
        await receive(sender)
    async with connect(last, "/l/score") as joiner:
        frame = await receive(joiner)
        assert frame["data"] == "2-0" and frame["position"].endswith(":2")
        assert await joiner.receive_nothing(0.1)


async def test_exclude_skips_the_sender_in_live_delivery_and_in_replays() -> None:
    async with connect(kept, "/h/ex") as a, connect(kept, "/h/ex") as b:
        await a.send_text("others:hi")
        assert (await receive(b))["data"] == "hi"
        assert await a.receive_nothing(0.1)


async def test_history_pages_join_live_updates_without_gap_or_overlap() -> None:
    for i in range(5):
        await manager.broadcast(f"v{i}", group="view")
    page = await sync_to_async(manager.history_sync)("view", limit=3)
    assert [m.message for m in page.messages] == ["v2", "v3", "v4"]
    assert page.position == page.head and page.resync is None
    await manager.broadcast("v5", group="view")
    async with connect(kept, f"/h/view?since={page.position}") as ws:
        assert (await receive(ws))["data"] == "v5"
        assert await ws.receive_nothing(0.1)
    since = page.messages[0].position
    forward = await manager.history("view", since=since, limit=2)
    assert [m.message for m in forward.messages] == ["v3", "v4"] and forward.position == forward.messages[-1].position
    assert (await manager.history("view", since="nope")).resync == "malformed"


async def test_misuse_is_named() -> None:
    with pytest.raises(ValueError, match="keeps no history"):
        await plain.history("x")
    with pytest.raises(ValueError, match="max_messages"):
        HistoryConfig(max_messages=0)
    with pytest.raises(ValueError, match="on_join"):
        HistoryConfig(max_messages=1, on_join=2)
    with pytest.raises(ValueError, match="not a position"):
        Position.parse("12")


async def test_a_custom_envelope_chooses_the_frames() -> None:
    def tagged(envelope: Any) -> str:
        if envelope.type == "resync":
            return f"RESYNC {envelope.position}"
        return f"{envelope.position} {envelope.message}"

    custom = ConnectionManager("tests.history.custom", history=HistoryConfig(envelope=tagged))

    @websocket("/c/{room}")
    async def handler(websocket: WebSocket, room: str) -> None:
        await serve(custom, websocket, room)

    async with connect(handler, "/c/r") as ws:
        await ws.send_text("hi")
        position, _, text = (await ws.receive_text()).partition(" ")
        assert text == "hi" and Position.parse(position).offset == 1
    async with connect(handler, "/c/r?since=zz:5") as ws:
        assert (await ws.receive_text()).startswith("RESYNC ")
    assert json_envelope is not tagged


async def test_out_of_order_arrivals_are_filled_from_the_store_and_deduplicated() -> None:
    async with connect(kept, "/h/order") as ws:
        hub = await _hub("default")
        assert hub.history is not None
        store = hub.history.store
        name = manager.group_name("order")
        limits = HistoryConfig(max_messages=50, max_age=60).limits
        e1 = await store.append(name, "text", "a", (), limits)
        e2 = await store.append(name, "text", "b", (), limits)
        log = hub.history.rooms[name]
        await log.receive(e2)  # e1 arrives late: it is read from the store first
        await log.receive(e1)
        await log.receive(e2)
        assert [(await receive(ws))["data"] for _ in range(2)] == ["a", "b"]
        assert await ws.receive_nothing(0.1)


async def test_memory_store_bounds_by_count_and_age_and_renews_the_epoch() -> None:
    store = MemoryHistory()
    limits = Limits(3, 0.05)
    for i in range(5):
        entry = await store.append("g", "text", str(i), (), limits)
    found = await store.read("g", 0, None, limits)
    assert [e.data for e in found.entries] == ["2", "3", "4"] and found.first == 3 and found.head == 5
    await asyncio.sleep(0.1)
    again = await store.read("g", None, None, limits)
    assert again.epoch != entry.epoch and again.head == 0 and again.entries == []


async def test_store_failure_is_an_explicit_error() -> None:
    failing = ConnectionManager("tests.history.failing", history=HistoryConfig())

    class Broken(MemoryHistory):
        async def append(self, *args: Any) -> Any:
            raise OSError("down")

    hub = await _hub("default")
    from ravyn_channels.history import relay_for

    relay = relay_for(hub)
    saved = relay.store
    relay.store = Broken()
    try:
        with pytest.raises(HistoryUnavailable, match="was not sent"):
            await failing.broadcast("x", group="r")
    finally:
        relay.store = saved


async def test_broadcast_sync_records_the_message_with_its_position() -> None:
    async with connect(kept, "/h/sync") as ws:
        await sync_to_async(manager.broadcast_sync)("from a view", "sync")
        frame = await receive(ws)
        assert frame["data"] == "from a view" and Position.parse(frame["position"]).offset >= 1
        page = await manager.history("sync")
        assert page.messages[-1].message == "from a view" and str(page.head) == frame["position"]


async def test_a_room_rejoined_after_its_last_socket_left_reads_its_cursor_again() -> None:
    async with connect(kept, "/h/again") as ws:
        await ws.send_text("one")
        await receive(ws)
    for i in range(3):
        await manager.broadcast(f"while away {i}", group="again")
    async with connect(kept, "/h/again") as ws:
        await manager.broadcast("back", group="again")
        assert (await receive(ws))["data"] == "back"
        assert await ws.receive_nothing(0.1)


def test_history_on_a_layer_that_cannot_hold_it_is_e090() -> None:
    from django.test import override_settings

    from ravyn_channels.checks import check_history_layers

    odd = {"default": {"BACKEND": "myproject.layers.KafkaLayer"}}
    with override_settings(CHANNEL_LAYERS=odd):
        errors = check_history_layers(managers=[manager, plain])
    assert [e.id for e in errors] == ["ravyn_channels.E090"] and "tests.history" in errors[0].msg
    redis = {"default": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer"}}
    with override_settings(CHANNEL_LAYERS=redis):
        assert check_history_layers(managers=[manager]) == []


async def test_a_socket_failing_mid_send_does_not_cost_the_others_the_message() -> None:
    async with connect(kept, "/h/fail") as a, connect(kept, "/h/fail") as b:
        await a.send_text("warm")
        await receive(a)
        await receive(b)
        first = next(ws for ws in manager.active_connections if ws.query_params is not None)

        async def broken(message: Any) -> None:
            raise RuntimeError("Attempt to send on a closed protocol")

        first.send = broken  # type: ignore[method-assign]
        await manager.broadcast("after", group="fail")
        got = [await s.receive_text() for s in (a, b) if not await s.receive_nothing(0.2)]
        assert [json.loads(g)["data"] for g in got] == ["after"]


async def test_broadcasts_to_the_whole_manager_stay_plain_frames() -> None:
    assert manager.history_config(None) is None and manager.history_config("r") is not None
    async with connect(kept, "/h/one") as a, connect(kept, "/h/two") as b:
        await manager.broadcast("to everyone")
        assert await a.receive_text() == "to everyone" and await b.receive_text() == "to everyone"


def test_a_rooms_renderer_writes_the_same_envelope_as_json_envelope() -> None:
    from ravyn_channels.history import Envelope, _new_renderer
    from ravyn_channels.history.store import Entry

    render = _new_renderer('lobby "é"', HistoryConfig())
    for kind, data in (("text", 'hé "quoted"\n'), ("json", '{"n": [1, "é"]}'), ("bytes", b"\x00\xff")):
        entry = Entry("e1", 7, 0.0, kind, data)
        expected = json_envelope(Envelope("message", 'lobby "é"', Position("e1", 7), kind, data))
        assert render(entry) == {"text": expected}
        assert json.loads(expected)["position"] == "e1:7"


async def test_memory_reads_by_offset_match_the_log() -> None:
    store = MemoryHistory()
    limits = Limits(5, None)
    for i in range(8):  # offsets 1..8, the last 5 kept (4..8)
        await store.append("g", "text", str(i + 1), (), limits)
    offsets = lambda found: [e.offset for e in found.entries]  # noqa: E731
    assert offsets(await store.read("g", None, None, limits)) == [4, 5, 6, 7, 8]
    assert offsets(await store.read("g", None, 2, limits)) == [7, 8]
    assert offsets(await store.read("g", None, 0, limits)) == []
    assert offsets(await store.read("g", 5, None, limits)) == [6, 7, 8]
    assert offsets(await store.read("g", 5, 2, limits)) == [6, 7]
    assert offsets(await store.read("g", 1, None, limits)) == [4, 5, 6, 7, 8]  # older than the log
    assert offsets(await store.read("g", 8, None, limits)) == []
    found = await store.read("g", 3, 0, limits)
    assert (found.head, found.first, found.entries) == (8, 4, [])


async def test_redis_reads_give_back_text_json_bytes_and_exclusions_as_written() -> None:
    import uuid

    from ravyn_channels.history.redis_store import RedisHistory
    from tests.conftest import REDIS_URL, require_redis

    require_redis()
    store = RedisHistory([{"address": REDIS_URL}], f"test-history-{uuid.uuid4().hex[:8]}")
    limits = Limits(10, 60)
    try:
        written = [
            await store.append("g", "text", 'hé "quoted" \\ /', ("p#1",), limits),
            await store.append("g", "json", '{"n": [1, "é"]}', (), limits),
        ]
        # Text only: the read comes back as one JSON string.
        found = await store.read("g", 0, None, limits)
        assert [(e.offset, e.kind, e.data, e.skip) for e in found.entries] == [
            (e.offset, e.kind, e.data, e.skip) for e in written
        ]
        written.append(await store.append("g", "bytes", b"\x00\xff\xfe", (), limits))
        # With bytes: element by element.
        found = await store.read("g", 1, None, limits)
        assert [(e.offset, e.kind, e.data, e.skip) for e in found.entries] == [
            (e.offset, e.kind, e.data, e.skip) for e in written[1:]
        ]
        assert (await store.read("g", 3, None, limits)).entries == []
    finally:
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        client.delete(*store.keys("g"))
        client.close()
        await store.aclose()
