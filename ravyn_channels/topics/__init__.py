"""Topics over one socket (opt-in): typed events, replies, join authorization.

    from ravyn_channels.topics import TopicError, TopicSocket

    live = TopicSocket("/live")                      # one websocket path, ravyn.topics.v1
    room = live.topic("room:{room_id:int}", presence=True)

    @room.on_join
    async def join(room_id: int, user: User, payload: JoinRequest) -> dict: ...

    @room.on("message")
    async def message(websocket: WebSocket, room_id: int, payload: ChatMessage) -> dict: ...

A raw ``@websocket`` handler is untouched by all this; see the README's "Topics"
for the wire format (``protocol``), the clients and ``manage.py ws_schema``.
"""

from __future__ import annotations

from .handlers import InvalidPayload, Joined, TopicError
from .protocol import CLOSE_HEARTBEAT_TIMEOUT, PROTOCOL, RESERVED_EVENTS
from .registry import Topic, TopicSocket, registered_sockets

__all__ = [
    "CLOSE_HEARTBEAT_TIMEOUT",
    "PROTOCOL",
    "RESERVED_EVENTS",
    "InvalidPayload",
    "Joined",
    "Topic",
    "TopicError",
    "TopicSocket",
    "registered_sockets",
]
