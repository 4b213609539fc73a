"""ravyn_channels topics: the echo as an event with a reply, the fan-out as a topic broadcast."""

from typing import Any

from ravyn_channels import Ravyn
from ravyn_channels.topics import TopicSocket

live = TopicSocket("/live")
echo = live.topic("echo")
room = live.topic("room:{name}")


@echo.on("echo")
async def on_echo(payload: Any) -> Any:
    return payload


@room.on("b")
async def on_broadcast(name: str, payload: Any) -> None:
    await room.broadcast(name, "b", payload)


application = Ravyn(routes=[live.route])
