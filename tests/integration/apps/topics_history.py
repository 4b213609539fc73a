"""A topic socket whose topics keep history (settings from the env), for the resume tests.

Events on ``room:{name}``: ``say`` ``{"n": N}`` pushes ``message`` ``{"n": N}``; ``burst``
``{"first": A, "last": B}`` pushes A..B one by one; ``typing`` pushes a passing signal (not
kept). ``small:{name}`` keeps 5 messages and sends the last 2 to a joiner without position.
A history store failure is replied ``{"reason": "unavailable"}``.
"""

from __future__ import annotations

from typing import Any

from ravyn_channels import Ravyn
from ravyn_channels.history import HistoryConfig, HistoryUnavailable
from ravyn_channels.topics import Topic, TopicError, TopicSocket

live = TopicSocket("/live")
room = live.topic("room:{name}", history=HistoryConfig(max_messages=20_000, max_age=300))
small = live.topic("small:{name}", history=HistoryConfig(max_messages=5, max_age=300, on_join=2))
plain = live.topic("plain:{name}")


def events(topic: Topic) -> None:
    @topic.on("say")
    async def say(name: str, payload: Any) -> None:
        try:
            await topic.broadcast(name, "message", {"n": payload["n"]})
        except HistoryUnavailable:
            raise TopicError("unavailable") from None

    @topic.on("burst")
    async def burst(name: str, payload: Any) -> None:
        try:
            for n in range(int(payload["first"]), int(payload["last"]) + 1):
                await topic.broadcast(name, "message", {"n": n})
        except HistoryUnavailable:
            raise TopicError("unavailable") from None

    @topic.on("typing")
    async def typing(name: str, payload: Any) -> None:
        await topic.broadcast(name, "typing", payload, history=False)


for each in (room, small, plain):
    events(each)

app = Ravyn(routes=[live.route])
