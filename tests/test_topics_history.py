"""Topics with history, in-process (in-memory layer): positions on pushes, resume on join, resync."""

from __future__ import annotations

from typing import Any

import pytest

from ravyn_channels.history import HistoryConfig
from ravyn_channels.testing import topic_client
from ravyn_channels.topics import TopicSocket

pytestmark = pytest.mark.django_db

live = TopicSocket("/tests/live-history")
kept = live.topic("kept:{name}", presence=True, history=HistoryConfig(max_messages=20, max_age=60, on_join=3))
bare = live.topic("bare:{name}")


@kept.on("say")
async def say(name: str, payload: Any) -> None:
    await kept.broadcast(name, "message", payload)


@kept.on("typing")
async def typing(name: str, payload: Any) -> None:
    await kept.broadcast(name, "typing", payload, history=False)


@bare.on("say")
async def bare_say(name: str, payload: Any) -> None:
    await bare.broadcast(name, "message", payload)


async def join(client: Any, topic: str, position: Any = None, ref: str = "j") -> list[dict[str, Any]]:
    """Send a join (with ``position`` when given); the frames up to and including its reply."""
    frame: dict[str, Any] = {"topic": topic, "event": "join", "payload": {}, "ref": ref}
    if position is not None:
        frame["position"] = position
    await client.session.send_json(frame)
    frames = []
    while True:
        got = await client.session.receive_json()
        frames.append(got)
        if got.get("event") == "reply" and got.get("ref") == ref:
            return frames


async def test_pushes_carry_positions_and_a_join_resumes_after_one_exactly_once() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        reply = (await join(a, "kept:r1"))[-1]
        assert reply["payload"]["status"] == "ok"
        epoch, _, head = reply["position"].partition(":")
        assert head == "0"
        for n in range(1, 6):
            await a.push("kept:r1", "say", {"n": n})
        pushed = [await a.receive("kept:r1", "message") for _ in range(5)]
        assert [p["position"] for p in pushed] == [f"{epoch}:{n}" for n in range(1, 6)]
        assert pushed[0] == {"topic": "kept:r1", "event": "message", "payload": {"n": 1}, "position": f"{epoch}:1"}
        # Another socket resumes after 2: 3, 4, 5 once, then the reply at the head; its presence
        # (a second connect to the same room) replays nothing more.
        frames = await join(b, "kept:r1", f"{epoch}:2")
        assert [(f["event"], f.get("position")) for f in frames] == [
            ("message", f"{epoch}:3"),
            ("message", f"{epoch}:4"),
            ("message", f"{epoch}:5"),
            ("reply", f"{epoch}:5"),
        ]
        assert (await b.receive("kept:r1", "presence"))["payload"]["type"] == "presence_state"
        await a.push("kept:r1", "say", {"n": 6})
        assert (await b.receive("kept:r1"))["position"] == f"{epoch}:6"
        assert await b.receive_nothing(0.2)


async def test_a_join_without_position_gets_the_newest_on_join_messages() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await join(a, "kept:r2")
        for n in range(1, 6):
            await a.push("kept:r2", "say", {"n": n})
        frames = await join(b, "kept:r2")
        assert [f["payload"]["n"] for f in frames if f["event"] == "message"] == [3, 4, 5]
        assert frames[-1]["position"].endswith(":5")


@pytest.mark.parametrize(
    ("position", "reason"),
    [("nonsense", "malformed"), (7, "malformed"), (None, None), ("0000000000000000:1", "epoch")],
)
async def test_positions_that_cannot_be_continued_get_a_resync_event(position: Any, reason: str | None) -> None:
    topic = f"kept:r3-{position!r}"  # a room per case (the in-memory history outlives a test)
    async with topic_client(live) as a:
        await join(a, topic, ref="first")
        await a.push(topic, "say", {"n": 1})
        await a.receive(topic, "message")
        await a.leave(topic)
        frames = await join(a, topic, position)
        if reason is None:  # no position: a plain join, the newest message
            assert [f["event"] for f in frames] == ["message", "reply"]
            return
        resync = frames[0]
        assert resync["event"] == "resync" and resync["payload"] == {"reason": reason}
        assert resync["position"].endswith(":0")  # the newest message (offset 1) follows
        assert [f["event"] for f in frames[1:]] == ["message", "reply"]


async def test_passing_signals_are_not_kept_and_topics_without_history_are_unchanged() -> None:
    async with topic_client(live) as a, topic_client(live) as b:
        await join(a, "kept:r4")
        await a.push("kept:r4", "typing", {"typing": True})
        assert await a.receive("kept:r4", "typing") == {
            "topic": "kept:r4",
            "event": "typing",
            "payload": {"typing": True},
        }
        frames = await join(b, "kept:r4", (await join(b, "bare:x", "ignored", ref="b"))[-1].get("position"))
        assert [f["event"] for f in frames] == ["reply"]  # nothing replayed: typing was not kept
        await b.push("bare:x", "say", {"n": 1})
        assert await b.receive("bare:x", "message") == {"topic": "bare:x", "event": "message", "payload": {"n": 1}}


def test_history_must_be_a_config_and_is_a_reserved_parameter() -> None:
    with pytest.raises(TypeError, match="HistoryConfig"):
        live.topic("wrong:{name}", history=100)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'history'"):
        live.topic("hist:{history}")
