"""Delivery to room members without waiting for any of them.

A broadcast (and any message the process channel delivers: personal, to a
user) is written to each member at once. A member whose connection cannot
take more right now (the server's write buffer is full: the client reads
slowly or not at all) gets an *outbox* instead: the message waits there, in
order, and a task writes it when the connection can take it. The broadcast
itself never waits for a member.

The policy is the same on every server: a member whose unsent data (the
server's buffer plus its outbox) exceeds ``SEND_BUFFER_LIMIT`` is dropped (its
TCP connection is aborted: the client sees 1006, the handler gets
``WebSocketDisconnect``), with one WARNING naming it. A member that reads,
however slowly, loses nothing up to that bound: to help it keep up, a delivery
that found a member behind yields once to the event loop (which writes the
buffers out) before the next one, instead of running ahead without limit.

Servers: under daphne (with the adapter) a send never waits, and the unsent
bytes are those of the Twisted transport (``servers.py``). Under uvicorn (its
default websockets-sansio protocol, and wsproto) the ASGI ``send`` waits while
the transport's buffer is over its high-water mark; that is what "cannot take
more" means there. Under another server (or uvicorn's legacy ``--ws
websockets``) every message is awaited in turn (no outbox), as before.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

from . import metrics
from .conf import get_settings
from .safetext import escape
from .websocket import Message, WebSocket, WebSocketDisconnect
from .writes import take_backlog

__all__ = ["behind", "post", "ready"]

logger = logging.getLogger("ravyn_channels")


class _Outbox:
    """Messages waiting for one connection, in order, and the task writing them."""

    __slots__ = ("messages", "size", "task")

    def __init__(self) -> None:
        self.messages: collections.deque[tuple[Message, int]] = collections.deque()
        self.size = 0
        self.task: asyncio.Task[None] | None = None


_boxes: dict[WebSocket, _Outbox] = {}
_behind = False


def behind() -> bool:
    """Whether a delivery since the last call found a member behind (and reset it)."""
    global _behind
    was = _behind or take_backlog()
    _behind = False
    return was


def _size(message: Message) -> int:
    data = message.get("bytes")
    if data is None:
        data = message.get("text") or ""
    return len(data)


def _server_protocol(ws: WebSocket) -> Any:
    """uvicorn's protocol object behind this socket's ASGI ``send``, or ``None``."""
    consumer = ws.consumer
    send = getattr(consumer, "base_send", None) if consumer is not None else None
    owner = getattr(send, "__self__", None)
    if owner is not None and isinstance(getattr(owner, "writable", None), asyncio.Event):
        return owner
    return None


def ready(ws: WebSocket) -> bool:
    """Whether a message to ``ws`` can be sent now without waiting: no outbox, and the server takes more."""
    if ws in _boxes:
        return False
    protocol = _server_protocol(ws)
    return protocol is None or bool(protocol.writable.is_set())


async def post(ws: WebSocket, message: Message) -> bool:
    """Send ``message`` to ``ws`` now, or queue it in ``ws``'s outbox; never waits for the client.

    Returns whether the message was sent or queued (``False``: the socket has gone).
    """
    global _behind
    if ready(ws):
        try:
            await ws.send(message)  # does not wait: daphne never does, uvicorn is writable
        except (WebSocketDisconnect, OSError):  # uvicorn's ClientDisconnected is an OSError
            return False
        return True
    box = _boxes.get(ws)
    if box is None:
        box = _boxes[ws] = _Outbox()
    _behind = True
    size = _size(message)
    box.messages.append((message, size))
    box.size += size
    limit = get_settings().SEND_BUFFER_LIMIT
    if limit is not None and box.size > limit:
        _drop(ws, box, limit)
        return False
    if box.task is None:
        box.task = asyncio.get_running_loop().create_task(_drain(ws, box))
    return True


async def _drain(ws: WebSocket, box: _Outbox) -> None:
    try:
        while box.messages:
            message, size = box.messages[0]
            try:
                await ws.send(message)
            except (WebSocketDisconnect, RuntimeError, OSError):
                break  # the client has gone (or the handler closed): nothing more to write
            box.messages.popleft()
            box.size -= size
    finally:
        box.messages.clear()
        if _boxes.get(ws) is box:
            del _boxes[ws]


def _drop(ws: WebSocket, box: _Outbox, limit: int) -> None:
    protocol = _server_protocol(ws)
    transport = getattr(protocol, "transport", None)
    logger.warning(
        "Dropped websocket client %s on %s: %d bytes wait to be sent (SEND_BUFFER_LIMIT=%d); it is not reading.",
        _client(ws),
        escape(ws.scope.get("path", "?")),
        box.size,
        limit,
    )
    box.messages.clear()
    box.size = 0
    if transport is not None:
        transport.abort()  # the server sees the connection lost, and tells the handler
    metrics.event("slow_reader_drops")
    if box.task is not None:
        box.task.cancel()
    _boxes.pop(ws, None)


def _client(ws: WebSocket) -> str:
    client = ws.scope.get("client")
    return escape(f"{client[0]}:{client[1]}") if client else "?"  # behind a proxy: client-written
