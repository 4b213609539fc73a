"""The demo's websocket handlers, found automatically by ravyn_channels.

The echo page keeps the seed's raw handler. The chat speaks topics (``ravyn.topics.v1``)
over one socket at ``/live``: rooms are joined and left without reconnecting,
``private:`` rooms only by logged-in users, and typing indicators are a second event.
Each room keeps its last messages: a page opened later shows them, a page that
reconnects gets what it missed (once, in order).
"""

import re
from typing import Any

from django.contrib.auth import get_user_model
from pydantic import BaseModel, Field

from ravyn_channels import WebSocket, WebSocketDisconnect, websocket
from ravyn_channels.history import HistoryConfig
from ravyn_channels.permissions import IsAuthenticated
from ravyn_channels.topics import Joined, Topic, TopicError, TopicSocket


@websocket("/ws/{client_id}")
async def chat_socket(websocket: WebSocket, client_id: str) -> None:
    """The seed's echo handler, unchanged."""
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_text()
            await websocket.send_text(f"Message from {client_id}: {data}")
    except WebSocketDisconnect:
        print(f"Client {client_id} disconnected")


live = TopicSocket("/live", max_message_size=4096)


class JoinRequest(BaseModel):
    nick: str = Field(default="", max_length=32)


class Say(BaseModel):
    text: str = Field(min_length=1, max_length=1000)


class Typing(BaseModel):
    typing: bool


#: What a nickname keeps: letters, digits, spaces and . ' - (no symbols such as ✓, no control characters).
NOT_IN_NICK = re.compile(r"[^\w .'-]+")


def nickname(raw: str) -> str:
    """An anonymous visitor's name: cleaned, at most 32 characters; shown marked as a guest."""
    return " ".join(NOT_IN_NICK.sub("", raw).split())[:32] or "anonymous"


async def speaker(websocket: WebSocket, nick: str) -> dict[str, Any]:
    """Who speaks: a logged-in user under their username; anyone else under a nickname no user has."""
    user = websocket.user
    if user.is_authenticated:
        return {"user": user.username, "auth": True}
    name = nickname(nick)
    if await get_user_model()._default_manager.filter(username__iexact=name).aexists():
        raise TopicError(f"{name!r} is a registered user's name: log in, or choose another nickname")
    return {"user": name, "auth": False}


#: Each room keeps its last 200 messages for a day; a page that joins is sent the last 50.
HISTORY = HistoryConfig(max_messages=200, max_age=24 * 3600, on_join=50)


def chat_room(pattern: str, **options: Any) -> Topic:
    """A chat topic: members in presence (with who they are), messages kept in history, typing indicators."""
    topic = live.topic(pattern, presence=True, history=HISTORY, **options)

    @topic.on_join
    async def join(websocket: WebSocket, payload: JoinRequest) -> Joined:
        who = await speaker(websocket, payload.nick)
        websocket.state.who = who  # one speaker per socket, whichever rooms it is in
        return Joined(who, meta=who)  # the reply, and what the member list shows

    @topic.on("message")
    async def message(websocket: WebSocket, name: str, payload: Say) -> None:
        await topic.broadcast(name, "message", {**websocket.state.who, "text": payload.text})

    @topic.on("typing")
    async def typing(websocket: WebSocket, name: str, payload: Typing) -> None:
        typing = {**websocket.state.who, "typing": payload.typing}
        await topic.broadcast(name, "typing", typing, exclude=websocket, history=False)  # passing: not kept

    return topic


room = chat_room("room:{name:path}")
private_room = chat_room("private:{name:path}", permissions=[IsAuthenticated])
