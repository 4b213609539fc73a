"""Topics over one socket, in-process: declaration, joins, events, replies, errors, pushes."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

import pytest
from pydantic import BaseModel

from ravyn_channels import Inject, WebSocket
from ravyn_channels.permissions import IsAuthenticated
from ravyn_channels.testing import HandshakeRefused, connect, topic_client
from ravyn_channels.topics import PROTOCOL, Joined, TopicError, TopicSocket
from ravyn_channels.topics.protocol import ReplyError

pytestmark = pytest.mark.django_db

live = TopicSocket("/tests/live")
room = live.topic("room:{room_id:int}")
private = live.topic("private:{name}", permissions=[IsAuthenticated])
lobby = live.topic("lobby", presence=True)

exits: list[str] = []


class ChatMessage(BaseModel):
    text: str
    urgent: bool = False


@dataclasses.dataclass
class Typing:
    nick: str
    typing: bool


async def resource(room_id: int) -> Any:
    exits.append(f"enter {room_id}")
    yield f"res-{room_id}"
    exits.append(f"exit {room_id}")


@room.on_join
async def join_room(room_id: int, user: Any, payload: dict[str, Any], res: str = Inject(resource)) -> Any:
    if room_id == 13:
        raise TopicError("room 13 is closed", details={"room": room_id})
    if room_id == 500:
        raise RuntimeError("boom in join")
    return {"welcome": room_id, "anonymous": not user.is_authenticated, "res": res, "nick": payload.get("nick")}


@room.on("message")
async def message(websocket: WebSocket, room_id: int, payload: ChatMessage) -> Any:
    await room.broadcast(room_id, "message", {"text": payload.text}, exclude=websocket)
    return {"delivered": payload.text, "urgent": payload.urgent}


@room.on("typing")
async def typing(room_id: int, payload: Typing) -> None:
    await room.broadcast(room_id=room_id, event="typing", payload=payload)


@room.on("crash")
async def crash(payload: Any) -> None:
    raise ValueError("handler bug")


@room.on("slow")
async def slow(payload: Any) -> str:
    await asyncio.sleep(float(payload))
    return "slept"


held: list[str] = []


@room.on("hold")
async def hold(payload: Any) -> str:
    held.append("waiting")
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        held.append("cancelled")
        raise
    return "held"


@room.on("whoami")
async def whoami(websocket: WebSocket) -> Any:
    return {"id": websocket.connection_id}


@lobby.on_join
async def join_lobby(payload: Any) -> Any:
    nick = payload.get("nick") if isinstance(payload, dict) else None
    return Joined({"hello": nick}, meta={"nick": nick}) if nick else None


@private.on_join
async def join_private(name: str, user: Any) -> Any:
    return {"name": name, "user": user.get_username()}


# -- declaration ------------------------------------------------------------------------


def test_topic_names_from_parameters() -> None:
    assert room.name(42) == "room:42"
    assert room.name(room_id=-3) == "room:-3"
    assert room.match("room:7") == {"room_id": 7}
    assert room.match("room:x") is None
    assert lobby.name() == "lobby"


def test_topic_names_are_remembered_per_value_and_type() -> None:
    def formatted(topic: Any, value: Any) -> str:
        try:
            return str(topic._format(topic._values((value,), {})))
        except ValueError as exc:
            return f"ValueError: {exc}"

    def named(topic: Any, value: Any) -> str:
        try:
            return str(topic.name(value))
        except ValueError as exc:
            return f"ValueError: {exc}"

    # Equal keys of different types (1, True, 1.0) each get their own name (or refusal), twice over.
    for topic in (room, private):
        for value in [1, True, 1.0, "1", 1, True, 1.0, "1", "x", "x"]:
            assert named(topic, value) == formatted(topic, value)
    assert private.name(True) == "private:True" and private.name(1) == "private:1"
    assert room.name(42) == room.name(room_id=42) == "room:42"
    assert private.name(["unhashable"]) == private._format({"name": ["unhashable"]})  # formatted, not kept


def test_reserved_events_cannot_have_handlers() -> None:
    with pytest.raises(ValueError, match="reserved event"):
        room.on("join")


def test_one_handler_per_event() -> None:
    with pytest.raises(ValueError, match="already has a handler"):

        @room.on("message")
        async def again(payload: Any) -> None: ...


def test_sync_handlers_are_refused_at_declaration() -> None:
    with pytest.raises(TypeError, match="must be 'async def'"):

        @room.on("sync")
        def sync(payload: Any) -> None: ...


class _Opaque:
    """A type no query string, header, cookie or dependency can produce."""


def test_unfillable_parameter_names_the_handler() -> None:
    # A plain ``int`` would be a query parameter of the socket (FastAPI's rule); this cannot be.
    with pytest.raises(TypeError, match="parameter 'nope' cannot be filled"):

        @room.on("bad")
        async def bad(nope: _Opaque) -> None: ...


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown converter"):
        live.topic("x:{a:nope}")
    with pytest.raises(ValueError, match="keyword of broadcast"):
        live.topic("x:{event}")


def test_broadcast_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="missing parameter 'room_id'"):
        room.broadcast_sync("message", {})
    with pytest.raises(TypeError, match=r"\(\*params, event, payload\)"):
        room.broadcast_sync(1)


# -- the handshake ------------------------------------------------------------------------


async def test_socket_accepts_with_the_subprotocol() -> None:
    async with topic_client(live) as client:
        assert client.session.subprotocol == PROTOCOL


async def test_socket_refuses_clients_without_the_subprotocol(rc_logs: pytest.LogCaptureFixture) -> None:
    with pytest.raises(HandshakeRefused):
        async with connect(live.route, "/tests/live"):
            pass
    assert "did not offer the 'ravyn.topics.v1' subprotocol" in rc_logs.text


async def test_bearer_subprotocol_is_offered_alongside() -> None:
    async with topic_client(live, subprotocols=["bearer", "tok"]) as client:
        assert client.session.subprotocol == PROTOCOL


# -- joins -------------------------------------------------------------------------------


async def test_join_reply_is_the_join_handlers_return_value() -> None:
    async with topic_client(live) as client:
        reply = await client.join("room:1", {"nick": "ann"})
        assert reply == {"welcome": 1, "anonymous": True, "res": "res-1", "nick": "ann"}


async def test_two_topics_on_one_socket_joined_and_left_independently() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await a.join("room:1")
        await a.join("room:2")
        await b.join("room:1")
        await b.join("room:2")
        assert await a.leave("room:1") == {}
        await b.push("room:1", "message", {"text": "one"})
        await b.push("room:2", "message", {"text": "two"})
        frame = await a.receive()
        assert frame == {"topic": "room:2", "event": "message", "payload": {"text": "two"}}
        assert await a.receive_nothing(0.1)


async def test_refused_join_is_a_reply_and_the_socket_stays_open() -> None:
    async with topic_client(live) as client:
        with pytest.raises(ReplyError) as refused:
            await client.join("room:13")
        assert refused.value.response == {"reason": "room 13 is closed", "details": {"room": 13}}
        assert await client.join("room:14")
        with pytest.raises(ReplyError, match="not joined"):
            await client.push("room:13", "message", {"text": "x"})


async def test_permission_refuses_anonymous_join() -> None:
    async with topic_client(live) as client:
        with pytest.raises(ReplyError, match="permission denied"):
            await client.join("private:club")


async def test_join_sees_the_django_user() -> None:
    from django.contrib.auth.models import User

    user = await User.objects.acreate(username="zoe")
    async with topic_client(live, scope={"user": user}) as client:
        assert await client.join("private:club") == {"name": "club", "user": "zoe"}


async def test_unknown_topic_and_double_join_are_errors() -> None:
    async with topic_client(live) as client:
        with pytest.raises(ReplyError, match="unknown topic 'nowhere'"):
            await client.join("nowhere")
        await client.join("room:3")
        with pytest.raises(ReplyError, match="already joined"):
            await client.join("room:3")


async def test_join_handler_crash_is_a_generic_error_logged(rc_logs: pytest.LogCaptureFixture) -> None:
    async with topic_client(live) as client:
        with pytest.raises(ReplyError) as refused:
            await client.join("room:500")
        assert refused.value.response == {"reason": "internal error"}
        assert "boom in join" in rc_logs.text and "join_room" in rc_logs.text


async def test_join_dependencies_exit_on_leave() -> None:
    exits.clear()
    async with topic_client(live) as client:
        await client.join("room:21")
        assert exits == ["enter 21"]
        await client.leave("room:21")
        assert exits == ["enter 21", "exit 21"]


async def test_join_dependencies_exit_when_the_socket_closes() -> None:
    exits.clear()
    async with topic_client(live) as client:
        await client.join("room:22")
    await asyncio.sleep(0.05)
    assert exits == ["enter 22", "exit 22"]


async def test_rejoin_after_leave() -> None:
    async with topic_client(live) as client:
        await client.join("room:4")
        await client.leave("room:4")
        assert (await client.join("room:4"))["welcome"] == 4


# -- events ------------------------------------------------------------------------------


async def test_event_reply_and_broadcast_excluding_the_sender() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await a.join("room:5")
        await b.join("room:5")
        assert await a.push("room:5", "message", {"text": "hi"}) == {"delivered": "hi", "urgent": False}
        assert (await b.receive("room:5", "message"))["payload"] == {"text": "hi"}
        assert await a.receive_nothing(0.1)


async def test_invalid_payload_names_the_field_and_keeps_the_socket() -> None:
    async with topic_client(live) as client:
        await client.join("room:6")
        with pytest.raises(ReplyError) as invalid:
            await client.push("room:6", "message", {"txt": "typo"})
        assert invalid.value.reason == "invalid payload (text)"
        assert invalid.value.response["errors"][0]["field"] == "text"
        assert (await client.push("room:6", "message", {"text": "ok"}))["delivered"] == "ok"


async def test_dataclass_payload_is_validated_and_broadcast() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await a.join("room:7")
        await b.join("room:7")
        with pytest.raises(ReplyError, match=r"invalid payload \(typing\)"):
            await a.push("room:7", "typing", {"nick": "a", "typing": "maybe"})
        assert await a.push("room:7", "typing", {"nick": "a", "typing": True}) == {}
        assert (await b.receive("room:7", "typing"))["payload"] == {"nick": "a", "typing": True}


async def test_handler_exception_is_generic_error_and_other_topics_survive(
    rc_logs: pytest.LogCaptureFixture,
) -> None:
    async with topic_client(live) as client:
        await client.join("room:8")
        await client.join("room:9")
        with pytest.raises(ReplyError) as failed:
            await client.push("room:8", "crash")
        assert failed.value.response == {"reason": "internal error"}
        assert "handler bug" in rc_logs.text and "Traceback" in rc_logs.text
        assert "test_topics.crash" in rc_logs.text
        assert (await client.push("room:9", "message", {"text": "still"}))["delivered"] == "still"
        assert (await client.push("room:8", "message", {"text": "same"}))["delivered"] == "same"


async def test_a_slow_handler_does_not_hold_up_other_topics() -> None:
    async with topic_client(live) as client:
        await client.join("room:10")
        await client.join("room:11")
        await client.send_frame("room:10", "slow", 1.0, ref="slow")
        assert (await client.push("room:11", "message", {"text": "fast"}))["delivered"] == "fast"
        slow_reply = await client.receive("room:10", "reply", timeout=3)
        assert slow_reply["ref"] == "slow" and slow_reply["payload"] == {"status": "ok", "response": "slept"}


async def test_a_topics_frames_are_answered_in_order_behind_a_waiting_handler() -> None:
    """An event started at once that then waits holds the topic's later frames, the leave included."""
    async with topic_client(live) as client:
        await client.join("room:16")
        await client.send_frame("room:16", "slow", 0.3, ref="slow")
        await client.send_frame("room:16", "message", {"text": "after"}, ref="after")
        await client.send_frame("room:16", "leave", ref="leave")
        replies = [await client.receive("room:16", "reply", timeout=3) for _ in range(3)]
        assert [r["ref"] for r in replies] == ["slow", "after", "leave"]
        assert replies[0]["payload"]["response"] == "slept"
        assert replies[1]["payload"]["response"] == {"delivered": "after", "urgent": False}
        # Idle again: the next event is answered at once, and a slow one again holds the next.
        await client.join("room:16")
        await client.send_frame("room:16", "slow", 0.2, ref="slow2")
        assert (await client.push("room:16", "message", {"text": "x"}))["delivered"] == "x"
        assert (await client.receive("room:16", "reply", timeout=3))["ref"] == "slow2"


async def test_closing_cancels_a_waiting_handler() -> None:
    held.clear()
    async with topic_client(live) as client:
        await client.join("room:17")
        await client.send_frame("room:17", "hold", ref="hold")
        # Frames are handled in order: once the heartbeat is answered, the hold handler is waiting.
        await client.push("ravyn", "heartbeat")
        assert held == ["waiting"]
    # The client closed (and the application finished) with the handler still asleep: cancelled.
    assert held == ["waiting", "cancelled"]


async def test_unknown_event_and_event_before_join() -> None:
    async with topic_client(live) as client:
        with pytest.raises(ReplyError, match="not joined to 'room:12': send a join first"):
            await client.push("room:12", "message", {"text": "x"})
        await client.join("room:12")
        with pytest.raises(ReplyError, match="has no event 'nope'"):
            await client.push("room:12", "nope")


async def test_events_without_ref_get_no_reply_but_errors_are_reported() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await a.join("room:15")
        await b.join("room:15")
        await a.send_frame("room:15", "message", {"text": "noref"})
        assert (await b.receive("room:15", "message"))["payload"] == {"text": "noref"}
        await a.send_frame("room:15", "message", {"bad": 1})
        error = await a.receive(event="error")
        assert error["topic"] == "room:15" and "invalid payload (text)" in error["payload"]["reason"]
        assert await a.receive_nothing(0.1)


# -- malformed frames ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("not json", "not JSON"),
        ("[" * 100_000, "nested too deeply"),  # under the size limit, deeper than the decoder follows
        (' {"topic": "room:1", "event": "x"} x', "not JSON"),
        ("[1, 2]", "a frame is a JSON object"),
        ('{"event": "join"}', "missing or empty 'topic'"),
        ('{"topic": "room:1"}', "missing or empty 'event'"),
        ('{"topic": "room:1", "event": "reply"}', "sent by the server"),
        ('{"topic": "room:1", "event": "x", "ref": [1]}', "'ref' must be"),
    ],
)
async def test_malformed_frames_get_an_error_event(raw: str, reason: str) -> None:
    async with topic_client(live) as client:
        await client.session.send_text(raw)
        error = await client.receive(event="error")
        assert reason in error["payload"]["reason"]
        assert await client.request("ravyn", "heartbeat") == {"status": "ok", "response": {}}


async def test_malformed_frame_with_ref_gets_an_error_reply() -> None:
    async with topic_client(live) as client:
        await client.session.send_text('{"topic": "", "event": "x", "ref": "r1"}')
        reply = await client.receive(event="reply")
        assert reply["ref"] == "r1" and reply["payload"]["status"] == "error"


async def test_binary_frames_get_an_error_event() -> None:
    async with topic_client(live) as client:
        await client.session.send_bytes(b"\x00\x01")
        assert "binary frames" in (await client.receive(event="error"))["payload"]["reason"]


async def test_oversized_frame_closes_with_1009(settings: Any) -> None:
    settings.RAVYN_CHANNELS = {**settings.RAVYN_CHANNELS, "MAX_MESSAGE_SIZE": 1000}
    async with topic_client(live) as client:
        await client.join("room:30")
        await client.send_frame("room:30", "message", {"text": "x" * 2000})
        assert await client.session.wait_closed() == 1009


async def test_silent_socket_is_closed_after_the_heartbeat_window(settings: Any) -> None:
    settings.RAVYN_CHANNELS = {**settings.RAVYN_CHANNELS, "TOPICS_HEARTBEAT_TIMEOUT": 0.3}
    async with topic_client(live) as client:
        await asyncio.sleep(0.15)
        assert await client.request("ravyn", "heartbeat") == {"status": "ok", "response": {}}
        await asyncio.sleep(0.15)
        assert await client.request("ravyn", "heartbeat") == {"status": "ok", "response": {}}
        assert await client.session.wait_closed(timeout=2) == 4408


async def test_too_many_topics_per_socket(settings: Any) -> None:
    settings.RAVYN_CHANNELS = {**settings.RAVYN_CHANNELS, "TOPICS_MAX_PER_SOCKET": 2}
    async with topic_client(live) as client:
        await client.join("room:41")
        await client.join("room:42")
        with pytest.raises(ReplyError, match="too many topics"):
            await client.join("room:43")
        await client.leave("room:41")
        await client.join("room:43")


# -- pushing from anywhere -------------------------------------------------------------------


async def test_push_to_one_connection() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await a.join("room:50")
        await b.join("room:50")
        cid = (await a.push("room:50", "whoami"))["id"]
        await room.push(cid, 50, "private", {"only": "a"})
        assert (await a.receive("room:50", "private"))["payload"] == {"only": "a"}
        assert await b.receive_nothing(0.1)


async def test_push_to_a_user() -> None:
    from django.contrib.auth.models import User

    user = await User.objects.acreate(username="uma")
    async with topic_client(live, scope={"user": user}) as a, topic_client(live) as b:
        await a.join("room:51")
        await b.join("room:51")
        await room.push_to_user(user, 51, "note", {"for": "uma"})
        assert (await a.receive("room:51", "note"))["payload"] == {"for": "uma"}
        assert await b.receive_nothing(0.1)


async def test_broadcast_sync_from_a_thread() -> None:
    async with topic_client(live) as a:
        await a.join("room:52")
        await asyncio.to_thread(room.broadcast_sync, 52, "news", {"n": 1})
        assert (await a.receive("room:52", "news"))["payload"] == {"n": 1}


async def test_presence_per_topic() -> None:
    async with topic_client(live) as a:
        await a.join("lobby")
        state = await a.receive("lobby", "presence")
        assert state["payload"]["type"] == "presence_state" and len(state["payload"]["members"]) == 1
        async with topic_client(live) as b:
            await b.join("lobby")
            diff = await a.receive("lobby", "presence")
            assert diff["payload"]["type"] == "presence_diff" and len(diff["payload"]["joins"]) == 1
        leave = await a.receive("lobby", "presence")
        assert leave["payload"]["type"] == "presence_diff" and len(leave["payload"]["leaves"]) == 1
        assert await lobby.manager.count("lobby") == 1


async def test_presence_frames_hide_connection_and_user_ids_and_carry_join_meta() -> None:
    from django.contrib.auth.models import User

    user = await User.objects.acreate(username="pia")
    async with topic_client(live, scope={"user": user}) as a:
        assert await a.join("lobby", {"nick": "p"}) == {"hello": "p"}
        state = (await a.receive("lobby", "presence"))["payload"]
        [(member, info)] = state["members"].items()
        assert state["me"] == member
        assert info == {"meta": {"nick": "p"}}  # the join's meta only: no username, no user id
        connection_id = lobby.manager.active_connections[0].connection_id
        assert connection_id and member != connection_id and "#" not in member and "!" not in member
        assert "pia" not in json.dumps(state)
        assert connection_id not in json.dumps(state)


async def test_members_leave_the_topic_room_on_close() -> None:
    async with topic_client(live) as a:
        await a.join("room:53")
        member = room.manager.active_connections
        assert len(member) == 1
    await asyncio.sleep(0.05)
    assert room.manager.active_connections == []
    assert live.manager.active_connections == []


# -- system checks ---------------------------------------------------------------------------


def test_check_e060_shadowed_topic_patterns() -> None:
    from ravyn_channels.topics.checks import check_topics

    other = TopicSocket("/tests/live-checks")
    other.topic("room:{a:int}")
    other.topic("room:{b:int}")
    other.topic("dm:{b:int}")
    messages = check_topics(sockets=[other])
    assert [m.id for m in messages] == ["ravyn_channels.E060"]
    assert "'room:{a:int}' and 'room:{b:int}'" in messages[0].msg and messages[0].hint


def test_check_w060_open_topic_with_events() -> None:
    from ravyn_channels.topics.checks import check_topics

    other = TopicSocket("/tests/live-open")
    open_topic = other.topic("open")

    @open_topic.on("say")
    async def say(payload: Any) -> None: ...

    assert [m.id for m in check_topics(sockets=[other])] == ["ravyn_channels.W060"]
    assert check_topics(sockets=[live]) == []


def test_check_topic_settings_values(settings: Any) -> None:
    from ravyn_channels.checks import check_settings

    settings.RAVYN_CHANNELS = {"TOPICS_HEARTBEAT_TIMEOUT": "soon", "TOPICS_MAX_PER_SOCKET": 0}
    assert [m.id for m in check_settings()] == ["ravyn_channels.E004", "ravyn_channels.E004"]


# -- token authentication alongside the subprotocol ------------------------------------------

from ravyn_channels.auth import aissue_token, token_user  # noqa: E402

secure = TopicSocket("/tests/live-secure", authenticate=token_user)
members_only = secure.topic("club", permissions=[IsAuthenticated])


@members_only.on_join
async def join_club(user: Any) -> Any:
    return {"user": user.get_username()}


async def test_bearer_token_authenticates_the_topic_socket() -> None:
    from django.contrib.auth.models import User

    user = await User.objects.acreate(username="tia")
    token = await aissue_token(user)  # reads the database: not in a throw-away thread
    async with topic_client(secure, subprotocols=["bearer", token]) as client:
        assert client.session.subprotocol == PROTOCOL
        assert await client.join("club") == {"user": "tia"}
    with pytest.raises(HandshakeRefused):
        async with topic_client(secure):
            pass


async def test_events_sent_before_a_refused_join_is_answered_get_not_joined() -> None:
    async with topic_client(live) as client:
        await client.send_frame("room:13", "join", {}, ref="j")
        await client.send_frame("room:13", "message", {"text": "early"}, ref="e")
        join = await client.receive("room:13", "reply")
        early = await client.receive("room:13", "reply")
        assert (join["ref"], join["payload"]["status"]) == ("j", "error")
        assert early["ref"] == "e"
        assert early["payload"] == {"status": "error", "response": {"reason": "not joined to 'room:13'"}}


async def test_events_sent_before_an_accepted_join_is_answered_run_after_it() -> None:
    async with topic_client(live) as client:
        await client.send_frame("room:60", "join", {}, ref="j")
        await client.send_frame("room:60", "message", {"text": "early"}, ref="e")
        join = await client.receive("room:60", "reply")
        early = await client.receive("room:60", "reply")
        assert (join["ref"], join["payload"]["status"]) == ("j", "ok")
        assert (early["ref"], early["payload"]["response"]) == ("e", {"delivered": "early", "urgent": False})


def test_client_backoff_doubles_with_jitter_and_a_cap() -> None:
    from ravyn_channels.client import backoff_delay

    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (30, 30.0)):
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 100  # jitter: clients that dropped together do not come back together


capped = TopicSocket("/tests/capped")
hall = capped.topic("hall:{n:int}", presence=True)


async def test_rooms_cap_counts_a_presence_topic_once_and_a_refusal_is_a_reply(
    settings: Any, rc_logs: pytest.LogCaptureFixture
) -> None:
    # A presence topic is one room of its manager (its private presence group is not a second
    # one), and MAX_ROOMS_PER_CONNECTION below TOPICS_MAX_PER_SOCKET refuses a join with a reply.
    settings.RAVYN_CHANNELS = {**settings.RAVYN_CHANNELS, "MAX_ROOMS_PER_CONNECTION": 3}
    async with topic_client(capped) as client:
        for n in (1, 2, 3):
            await client.join(f"hall:{n}")
        with pytest.raises(ReplyError, match="too many rooms"):
            await client.join("hall:4")
        await client.leave("hall:1")
        await client.join("hall:4")
    assert "Traceback" not in rc_logs.text and "never retrieved" not in rc_logs.text


def test_topic_socket_path_takes_no_parameters() -> None:
    # "/org/{org}/live" would share "room:1" between every org's clients: refused at declaration.
    with pytest.raises(ValueError, match=r"takes no parameters.*topic names"):
        TopicSocket("/tests/org/{org}/live")
