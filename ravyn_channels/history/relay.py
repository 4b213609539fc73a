"""One process's side of history: delivering a room's entries to its sockets in offset order, once.

The ``Relay`` of a process channel keeps a ``RoomLog`` per room with history
that has members here. Entries reach a room log from this process's own
broadcasts and from the channel layer, in whatever order they arrive; the log
delivers them in offset order: an entry at or below its cursor is a
duplicate and is dropped, an entry beyond ``cursor + 1`` is preceded by the
missing ones, read from the store (the store has every offset it assigned, so
a message the layer dropped or delivered late is filled in). Every process
therefore delivers a room's messages in the store's order.

Each socket has its own cursor (``_Sub``): while it joins — replaying what it
missed from the store — live entries wait in its queue, and are sent after the
replay, skipping any offset the replay already sent. That is the whole
"exactly once at the boundary" argument: the socket is registered (and
queueing) before its process joins the layer group, the replay is read after,
so every offset above the socket's resume point is either in the replay or in
the queue, and the cursor removes the overlap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..outbox import behind, post
from ..websocket import WebSocket, WebSocketState
from .store import Entry, HistoryBackend, Limits

__all__ = ["Relay", "Resync", "RoomLog"]

logger = logging.getLogger("ravyn_channels")


@dataclass(frozen=True)
class Resync:
    """Tell a socket to reload: what it holds cannot be continued; messages after ``offset`` of ``epoch`` follow."""

    epoch: str
    offset: int
    reason: str


#: Turns an entry or a resync into the frame sent (``{"text": ...}`` or ``{"bytes": ...}``).
Render = Callable[["Entry | Resync"], dict[str, Any]]


class _Sub:
    """One socket in one room: its position, and its queue while it replays."""

    __slots__ = ("epoch", "last", "pending", "render", "ws")

    def __init__(self, ws: WebSocket, render: Render) -> None:
        self.ws = ws
        self.render = render
        self.epoch = ""
        self.last = 0
        self.pending: list[Entry | Resync] | None = []

    async def offer(self, item: Entry | Resync, frames: dict[Render, dict[str, Any]] | None = None) -> None:
        if self.pending is not None:
            self.pending.append(item)
        else:
            await self.send(item, frames)

    async def send(self, item: Entry | Resync, frames: dict[Render, dict[str, Any]] | None = None) -> None:
        """Send ``item`` unless this socket has it already; ``frames`` caches the rendering per renderer."""
        if isinstance(item, Resync):
            self.epoch, self.last = item.epoch, item.offset
            await self._write(item)
            return
        if item.epoch != self.epoch:
            # The room's history was replaced: this socket cannot continue what it had.
            resync = Resync(item.epoch, item.offset - 1, "epoch")
            self.epoch, self.last = resync.epoch, resync.offset
            await self._write(resync)
        if item.offset <= self.last:
            return
        self.last = item.offset
        if self.ws.connection_id not in item.skip:
            await self._write(item, frames)

    async def replay(self, entries: list[Entry]) -> None:
        """``send`` each of ``entries`` (a read from the store, in offset order), rendered one by one."""
        ws, render = self.ws, self.render
        connected = WebSocketState.CONNECTED
        for entry in entries:
            if entry.epoch != self.epoch or entry.offset <= self.last:
                await self.send(entry)
                continue
            self.last = entry.offset
            if (entry.skip and ws.connection_id in entry.skip) or ws.application_state is not connected:
                continue
            if ws.close_code is not None:
                continue
            await _post(ws, _message(render(entry)))

    async def _write(self, item: Entry | Resync, frames: dict[Render, dict[str, Any]] | None = None) -> None:
        ws = self.ws
        if ws.application_state is not WebSocketState.CONNECTED or ws.close_code is not None:
            return
        if frames is None:
            message = _message(self.render(item))
        else:
            # Sockets of a room share their renderer: one envelope per message, not one per socket.
            found = frames.get(self.render)
            message = frames[self.render] = _message(self.render(item)) if found is None else found
        await _post(ws, message)


def _message(frame: dict[str, Any]) -> dict[str, Any]:
    return {"type": "websocket.send", **frame}


async def _post(ws: WebSocket, message: dict[str, Any]) -> None:
    """Send (or queue behind what waits in its outbox, so the order holds) one frame to ``ws``."""
    try:
        await post(ws, message)
    except Exception as exc:
        # The transport is closing under us (e.g. autobahn's Disconnected): this socket is
        # gone, the room's other sockets must still get the message.
        logger.debug("Could not send a history frame to %s (%r)", ws.connection_id, exc)


class RoomLog:
    """This process's delivery of one room's history (see the module docstring)."""

    def __init__(self, relay: Relay, group: str, limits: Limits) -> None:
        self.relay = relay
        self.group = group
        self.limits = limits
        self.epoch: str | None = None
        self.cursor = 0
        #: Set when a socket joins a room that had none here: the cursor is read again
        #: (this process may have missed the room's messages meanwhile).
        self.restart = False
        self.lock = asyncio.Lock()
        self.subs: dict[WebSocket, _Sub] = {}

    async def start(self) -> None:
        """Read the room's head as this process's cursor, if not done since the room had sockets here."""
        if self.epoch is None or self.restart:
            found = await self.relay.store.read(self.group, None, 0, self.limits)
            self.epoch, self.cursor, self.restart = found.epoch, found.head, False

    async def receive(self, entry: Entry) -> None:
        """Deliver ``entry`` (and any offsets missing before it) to the room's sockets here, in order.

        When the store cannot be read (to check a new epoch or fill a gap), the
        entry waits: the room's next entry reads the store again and delivers
        both, in order. A WARNING is logged.
        """
        async with self.lock:
            try:
                await self._receive(entry)
            except Exception as exc:
                now = asyncio.get_running_loop().time()
                level = logging.DEBUG if now - self.relay.warned < 30.0 else logging.WARNING
                self.relay.warned = now
                logger.log(
                    level,
                    "History of %r unreadable (%r): message %s:%s is delivered with the room's next one.",
                    self.group,
                    exc,
                    entry.epoch,
                    entry.offset,
                )

    async def _receive(self, entry: Entry) -> None:
        if self.epoch is None or self.restart:
            # No socket here is live yet: the ones joining replay up to the head.
            await self.start()
            return
        if entry.epoch != self.epoch:
            found = await self.relay.store.read(self.group, None, 0, self.limits)
            if found.epoch != entry.epoch:
                return  # a late entry of a history that no longer exists
            await self._resync(Resync(entry.epoch, entry.offset - 1, "epoch"))
        if entry.offset <= self.cursor:
            return
        if entry.offset > self.cursor + 1:
            missing = entry.offset - self.cursor - 1
            found = await self.relay.store.read(self.group, self.cursor, missing, self.limits)
            if found.epoch != self.epoch:
                await self._resync(Resync(found.epoch, found.head, "epoch"))
                return
            if found.first > self.cursor + 1:
                # Trimmed before this process could deliver them: say so rather than skip silently.
                await self._resync(Resync(self.epoch, entry.offset - 1, "expired"))
            else:
                for gap in found.entries:
                    if gap.offset < entry.offset:
                        await self._deliver(gap)
        await self._deliver(entry)

    async def _resync(self, resync: Resync) -> None:
        self.epoch, self.cursor = resync.epoch, resync.offset
        for sub in list(self.subs.values()):
            await sub.offer(resync)

    async def _deliver(self, entry: Entry) -> None:
        self.cursor = entry.offset
        members = self.relay.members.get(self.group, {})
        # One message per renderer (the room's sockets share theirs): enveloped once per process.
        frames: dict[Render, dict[str, Any]] = {}
        epoch, offset, skip = entry.epoch, entry.offset, entry.skip
        connected = WebSocketState.CONNECTED
        for ws, sub in list(self.subs.items()):
            if sub.pending is not None:
                sub.pending.append(entry)  # joining: sent after its replay
                continue
            if ws not in members:
                self.subs.pop(ws, None)
                continue
            if sub.epoch != epoch or offset != sub.last + 1:
                await sub.send(entry, frames)  # a resync first, or a duplicate to drop
                continue
            # The common case, inline: the next offset of the socket's epoch.
            sub.last = offset
            if (skip and ws.connection_id in skip) or ws.application_state is not connected:
                continue
            if ws.close_code is not None:
                continue
            message = frames.get(sub.render)
            if message is None:
                message = frames[sub.render] = _message(sub.render(entry))
            try:
                await post(ws, message)
            except Exception as exc:  # as in _post, without its call per socket
                logger.debug("Could not send a history frame to %s (%r)", ws.connection_id, exc)
        if behind():
            await asyncio.sleep(0)  # a member is behind: let the loop write the buffers out


class Relay:
    """This process's room logs on one channel layer (one per process channel)."""

    def __init__(self, members: dict[str, dict[WebSocket, None]], store: HistoryBackend) -> None:
        #: The process channel's local members per group (``_Hub.members``).
        self.members = members
        self.store = store
        self.rooms: dict[str, RoomLog] = {}
        #: When a store failure was last logged as a WARNING (the rest of an outage logs DEBUG).
        self.warned = -1e9

    def room(self, group: str, limits: Limits) -> RoomLog:
        log = self.rooms.get(group)
        if log is None:
            log = self.rooms[group] = RoomLog(self, group, limits)
        log.limits = limits
        return log

    def subscribe(self, group: str, limits: Limits, ws: WebSocket, render: Render) -> _Sub:
        """Register ``ws`` in ``group`` (queueing) before its process joins the layer group."""
        sub = _Sub(ws, render)
        log = self.room(group, limits)
        if not log.subs:
            log.restart = True
        log.subs[ws] = sub
        return sub

    def leave(self, ws: WebSocket, groups: set[str]) -> None:
        """Forget ``ws`` in these groups (it left them or closed)."""
        for group in groups:
            log = self.rooms.get(group)
            if log is not None:
                log.subs.pop(ws, None)
                if not log.subs:
                    del self.rooms[group]

    async def receive(self, group: str, event: dict[str, Any]) -> bool:
        """A ``ravyn.broadcast`` event with a position, from the layer; ``False`` when no room log here wants it."""
        log = self.rooms.get(group)
        entry = entry_from_event(event)
        if log is None or entry is None:
            return False
        await log.receive(entry)
        return True


def event_fields(entry: Entry) -> dict[str, Any]:
    """The fields a ``ravyn.broadcast`` event carries for an entry (besides ``text``/``bytes``)."""
    fields: dict[str, Any] = {"position": f"{entry.epoch}:{entry.offset}", "kind": entry.kind, "time": entry.time}
    if entry.skip:
        fields["skip"] = list(entry.skip)
    return fields


def entry_from_event(event: dict[str, Any]) -> Entry | None:
    """The entry a ``ravyn.broadcast`` event with a position carries (``None`` if it is not well formed)."""
    try:
        epoch, _, offset = str(event["position"]).partition(":")
        kind = str(event.get("kind") or "text")
        data = event.get("bytes") if kind == "bytes" else event.get("text")
        if data is None or not epoch:
            return None
        skip = tuple(str(s) for s in event.get("skip") or ())
        return Entry(epoch, int(offset), float(event.get("time") or 0.0), kind, data, skip)
    except (KeyError, TypeError, ValueError):
        return None
