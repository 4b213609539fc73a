"""One topic on a client ``Socket`` (``ravyn_channels.client``): join, push, events, presence, position."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Socket

__all__ = ["Channel", "Handler"]

logger = logging.getLogger("ravyn_channels.client")

Handler = Callable[[Any], Awaitable[None] | None]


class Channel:
    """One topic on a ``Socket``: ``join``, ``push``, ``on(event)``, ``leave``."""

    def __init__(self, socket: Socket, topic: str):
        self.socket = socket
        self.topic = topic
        #: ``closed``, ``joining``, ``joined``, ``leaving`` or ``errored`` (a rejoin was refused).
        self.state = "closed"
        self.join_payload: Any = None
        self._handlers: dict[str, list[Handler]] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        #: Members of a topic with presence, as last known: ``{connection_id: info}``.
        self.presence: dict[str, Any] = {}
        #: How many times the server accepted a join of this channel (first join and rejoins).
        self.joins = 0
        #: The last position received on a topic with history (``"<epoch>:<offset>"``), sent on rejoin.
        self.position: str | None = None
        self._pushed = False  # a frame with a position arrived since the last join was sent

    def on(self, event: str, handler: Handler | None = None) -> Any:
        """Call ``handler(payload)`` for each ``event`` pushed on this topic (also a decorator)."""

        def add(func: Handler) -> Handler:
            self._handlers.setdefault(event, []).append(func)
            return func

        return add(handler) if handler is not None else add

    async def join(self, payload: Any = None, timeout: float | None = None, *, position: str | None = None) -> Any:
        """Join the topic; the join handler's reply, or ``ReplyError`` when refused.

        After a reconnect the socket joins again with the same payload and the
        last position received. ``position`` (a topic with history) resumes from
        a position the application kept, e.g. ``manager.history()``'s page position.
        """
        self.join_payload = {} if payload is None else payload
        if position is not None:
            self.position = position
        self.state = "joining"
        try:
            response = await self._join(timeout)
        except BaseException:
            self.state = "closed"
            raise
        self.state = "joined"
        self.joins += 1
        return response

    async def _join(self, timeout: float | None) -> Any:
        self._pushed = False
        extra = {} if self.position is None else {"position": self.position}
        frame = await self.socket._request(self.topic, "join", self.join_payload, timeout, extra, whole=True)
        position = frame.get("position")
        if not isinstance(position, str):
            self.position = None  # a topic without history (now): nothing to resume
        elif not self._pushed or _later(position, self.position):
            self.position = position
        return (frame.get("payload") or {}).get("response")

    async def leave(self, timeout: float | None = None) -> None:
        """Leave the topic (and stop rejoining it)."""
        self.state = "leaving"
        self.position = None
        try:
            await self.socket._request(self.topic, "leave", {}, timeout)
        finally:
            self.state = "closed"
            self.presence = {}

    async def push(self, event: str, payload: Any = None, timeout: float | None = None) -> Any:
        """Send ``event`` and wait for the reply's ``response`` (``ReplyError``, ``TimeoutError``)."""
        return await self.socket._request(self.topic, event, {} if payload is None else payload, timeout)

    async def send(self, event: str, payload: Any = None) -> None:
        """Send ``event`` without asking for a reply."""
        await self.socket._send({"topic": self.topic, "event": event, "payload": {} if payload is None else payload})

    async def receive(self, event: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """The next frame pushed on this topic (``event`` only, if given), as ``{"event", "payload"}``
        (plus ``"position"`` on a topic with history)."""
        async with asyncio.timeout(timeout if timeout is not None else self.socket.timeout):
            while True:
                frame = await self._inbox.get()
                if event is None or frame["event"] == event:
                    return frame

    async def _dispatch(self, frame: dict[str, Any]) -> None:
        event, payload = frame.get("event"), frame.get("payload")
        if event == "presence" and isinstance(payload, dict):
            _apply_presence(self.presence, payload)
        item = {"event": event, "payload": payload}
        position = frame.get("position")
        if isinstance(position, str):
            item["position"] = position
            if self.state in ("joining", "joined", "errored"):  # not a leave's last pushes
                self.position = position
                self._pushed = True
        if self._inbox.full():
            self._inbox.get_nowait()  # nobody reads receive(): keep the newest
        self._inbox.put_nowait(item)
        for handler in self._handlers.get(str(event), ()):
            try:
                result = handler(payload)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("Handler of %r on %r failed", event, self.topic)

    def __repr__(self) -> str:
        return f"<Channel {self.topic!r} {self.state}>"


def _later(position: str, than: str | None) -> bool:
    """``position`` is after ``than`` in the same history (a join reply beyond the last push received)."""
    if than is None:
        return True
    epoch, _, offset = position.partition(":")
    old_epoch, _, old_offset = than.partition(":")
    try:
        return epoch == old_epoch and int(offset) > int(old_offset)
    except ValueError:
        return False


def _apply_presence(members: dict[str, Any], change: dict[str, Any]) -> None:
    if change.get("type") == "presence_state":
        members.clear()
        members.update(change.get("members") or {})
    elif change.get("type") == "presence_diff":
        for cid in change.get("leaves") or {}:
            members.pop(cid, None)
        members.update(change.get("joins") or {})
