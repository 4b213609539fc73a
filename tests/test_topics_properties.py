"""Random frames against a topic socket (hypothesis): only replies and error events, never a crash."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ravyn_channels import WebSocket
from ravyn_channels.testing import topic_client
from ravyn_channels.topics import TopicError, TopicSocket
from ravyn_channels.topics.session import _Membership

pytestmark = pytest.mark.django_db

fuzz = TopicSocket("/tests/fuzz")
room = fuzz.topic("room:{room_id:int}")
lobby = fuzz.topic("lobby", presence=True)


class Text(BaseModel):
    text: str


@room.on_join
async def join(room_id: int, payload: Any) -> Any:
    if room_id < 0:
        raise TopicError("negative rooms are closed")
    return {"room": room_id}


@room.on("message")
async def message(websocket: WebSocket, room_id: int, payload: Text) -> Any:
    await room.broadcast(room_id, "message", {"text": payload.text}, exclude=websocket)
    return {"ok": True}


@room.on("echo")
async def echo(payload: Any) -> Any:
    return payload


FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=10,
)
topics = st.sampled_from(["room:1", "room:-2", "room:x", "lobby", "nowhere", "ravyn", ""]) | st.text(max_size=12)
events = st.sampled_from(["join", "leave", "heartbeat", "reply", "error", "presence", "message", "echo", "nope"])
refs = st.none() | st.integers() | st.text(max_size=8) | st.lists(st.integers(), max_size=2)
structured = st.fixed_dictionaries(
    {},
    optional={"topic": topics | json_values, "event": events | json_values, "payload": json_values, "ref": refs},
).map(json.dumps)
frames = st.lists(structured | json_values.map(json.dumps) | st.text(max_size=30), min_size=1, max_size=12)


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Any:
    handler = ErrorCounter()
    logging.getLogger("ravyn_channels").addHandler(handler)
    yield handler.records
    logging.getLogger("ravyn_channels").removeHandler(handler)


ANSWERS = {"reply", "error", "presence", "message"}


@FAST
@given(batch=frames)
def test_random_frames_get_only_replies_and_errors(errors: list[Any], batch: list[str]) -> None:
    async def run() -> tuple[list[dict[str, Any]], int, int]:
        async with topic_client(fuzz) as warm:  # start this loop's hub and presence tracker first
            await warm.join("lobby")
        await asyncio.sleep(0.05)
        before = len(asyncio.all_tasks())
        seen: list[dict[str, Any]] = []
        async with topic_client(fuzz) as client:
            for text in batch:
                await client.session.send_text(text)
            final = await client.request("ravyn", "heartbeat", timeout=5)  # the socket still answers
            assert final == {"status": "ok", "response": {}}
            seen = list(client.pending)
        await asyncio.sleep(0.05)
        return seen, before, len(asyncio.all_tasks())

    seen, before, after = async_to_sync(run)()
    for frame in seen:
        assert frame.get("event") in ANSWERS, frame
        if frame["event"] == "error":
            assert isinstance(frame["payload"]["reason"], str) and frame["payload"]["reason"]
    assert after == before  # no task outlives its socket
    assert errors == []


def test_nothing_is_left_behind_after_random_sockets() -> None:
    async def run() -> int:
        async with topic_client(fuzz) as client:
            await client.join("room:1")
            await client.join("lobby")
            await client.session.send_text('{"topic": "room:1", "event": "echo", "ref": 1, "payload": [1]}')
        await asyncio.sleep(0.05)
        return len(room.manager.active_connections) + len(lobby.manager.active_connections)

    assert async_to_sync(run)() == 0
    gc.collect()
    assert not [o for o in gc.get_objects() if type(o) is _Membership]
