"""The per-process part of presence: one ``Tracker`` per event loop and channel layer.

It keeps this process's members alive in the store with heartbeats (every
TTL/4), removes and announces members whose process stopped heartbeating,
announces each join and leave once (a ``ravyn.presence`` event to the room's
Channels group, numbered by the room's sequence), and feeds subscribed
sockets ``presence_state`` then ``presence_diff`` frames in sequence order:
one task writes every frame, holding changes that arrive early and reloading
a room from the store when a change never arrives.

A change costs one frame per subscriber, so a room's frames are bounded: in a
room with at least ``BATCH_FROM`` subscribers on this process, changes that
come faster than ``DIFF_FRAMES_PER_SECOND`` frames allow are merged into one
diff (a join and a leave of the same connection cancel out), sent at most
``MAX_BATCH_DELAY`` seconds later. Subscribers who join meanwhile get the
state the others were last sent, built once per diff, and the same next diff.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from ..rooms import private_group
from ..websocket import WebSocket, WebSocketDisconnect, WebSocketState
from . import PRESENCE, PresenceCallback, public_members, timings
from .store import Info, PresenceBackend

__all__ = ["GAP_WAIT", "Tracker"]

logger = logging.getLogger("ravyn_channels")

#: Seconds a subscribed room may stay behind (a change numbered but not received) before it is reloaded.
GAP_WAIT = 1.0
#: Seconds between attempts to load a room's state while the store is failing.
RETRY = 2.0
#: Out-of-order changes held per room before it is reloaded at once.
MAX_PENDING = 1000
#: Rooms with fewer subscribers on this process get one diff per change, at once.
BATCH_FROM = 20
#: Presence frames per second a room may cost this process before its changes are merged.
DIFF_FRAMES_PER_SECOND = 2000
#: The longest a change waits to be merged with later ones (in the largest rooms).
MAX_BATCH_DELAY = 1.0


@dataclass(eq=False)
class _Sub:
    ws: WebSocket
    callback: PresenceCallback | None
    ready: bool = False


class _Room:
    """A subscribed room on this process: its members as last known, at sequence ``seq``."""

    def __init__(self, group: str, room: str | None):
        self.group = group
        self.room = room
        self.seq: int | None = None  # None: not loaded yet
        self.members: dict[str, Info] = {}
        self.subs: dict[WebSocket, _Sub] = {}
        self.pending: dict[int, dict[str, Any]] = {}  # changes that arrived ahead of their turn
        self.expect = 0  # the highest sequence heard of
        self.timer: asyncio.TimerHandle | None = None
        # What the ready subscribers were last sent: the members at ``shown_seq``.
        self.shown: dict[str, Info] = {}
        self.shown_seq: int | None = None
        self.dirty: set[str] = set()  # connection ids changed since (the next diff)
        self.state: tuple[dict[str, Any], str] | None = None  # the presence_state of ``shown``, built once
        self.flushed = 0.0  # monotonic time of the last diff sent
        self.flush_timer: asyncio.TimerHandle | None = None

    def behind(self) -> bool:
        return self.seq is None or bool(self.pending) or self.seq < self.expect

    def batch_interval(self) -> float:
        """Seconds between two diffs of this room: 0 below ``BATCH_FROM`` subscribers."""
        if len(self.subs) < BATCH_FROM:
            return 0.0
        return min(MAX_BATCH_DELAY, len(self.subs) / DIFF_FRAMES_PER_SECOND)

    def cancel_timers(self) -> None:
        for timer in (self.timer, self.flush_timer):
            if timer is not None:
                timer.cancel()
        self.timer = self.flush_timer = None


class Tracker:
    """This process's presence on one channel layer: its members, heartbeats and subscribers."""

    def __init__(self, layer: Any, channel: str, backend: PresenceBackend, ttl: float):
        self.layer = layer
        self.channel = channel
        self.backend = backend
        self.lifetime, self.interval = timings(ttl)
        #: group -> connection id -> info, for this process's members.
        self.local: dict[str, dict[str, Info]] = {}
        self.rooms: dict[str, _Room] = {}
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._failing = False
        loop = asyncio.get_running_loop()
        self._worker = loop.create_task(self._work())
        self._beater = loop.create_task(self._beat()) if backend.expires else None

    # -- this process's members --------------------------------------------------------

    async def track(self, cid: str, infos: dict[str, Info]) -> None:
        """Record connection ``cid`` in groups (group -> info) and announce it."""
        for group, info in infos.items():
            self.local.setdefault(group, {})[cid] = info
        await self._join({group: {cid: info} for group, info in infos.items()})
        gone = [group for group in infos if cid not in self.local.get(group, {})]
        if gone:  # it disconnected while joining: make sure the store forgets it
            await self.leave(cid, gone)

    def untrack(self, ws: WebSocket, cid: str, groups: Collection[str]) -> list[str]:
        """Forget ``cid`` in ``groups`` at once (no more heartbeats, no more frames to ``ws``)."""
        tracked = []
        for group in groups:
            members = self.local.get(group)
            if members is not None and members.pop(cid, None) is not None:
                tracked.append(group)
                if not members:
                    del self.local[group]
            self.unsubscribe(ws, group)
        return tracked

    async def leave(self, cid: str, groups: Collection[str]) -> None:
        """Remove ``cid`` from the store and announce it (after ``untrack``)."""
        try:
            changes = await self.backend.leave(dict.fromkeys(groups, (cid,)))
        except Exception as exc:
            self._fail("record a leave", exc)
            return
        for group, change in changes.items():
            if change.seq:
                await self._announce(group, change.seq, {}, change.members)

    async def _join(self, changes: dict[str, dict[str, Info]]) -> None:
        try:
            done = await self.backend.join(changes)
        except Exception as exc:
            self._fail("record a join", exc)  # the next heartbeat adds it again
            return
        for group, change in done.items():
            if change.seq:
                await self._announce(group, change.seq, change.members, {})

    async def _announce(self, group: str, seq: int, joins: dict[str, Info], leaves: dict[str, Info]) -> None:
        event = {"type": PRESENCE, "group": group, "origin": self.channel, "seq": seq, "joins": joins, "leaves": leaves}
        self.receive(event)
        try:
            await self.layer.group_send(private_group(group), event)
        except Exception as exc:
            logger.error("Presence change in %r reached this process only: the channel layer failed (%r).", group, exc)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Presence heartbeat failed")

    async def beat(self) -> None:
        """Keep this process's members alive, announce expired ones, bring back lost ones."""
        local = {group: list(members) for group, members in self.local.items() if members}
        if not local:
            return
        try:
            beats = await self.backend.beat(local)
        except Exception as exc:
            self._fail("heartbeat", exc)
            return
        if self._failing:
            self._failing = False
            logger.info("Presence store reachable again; heartbeats resumed.")
        lost: dict[str, dict[str, Info]] = {}
        for group, beat in beats.items():
            if beat.left:
                await self._announce(group, beat.seq, {}, beat.left)
            room = self.rooms.get(group)
            if room is not None and beat.current > room.expect:
                room.expect = beat.current
                self._watch(room)
            members = self.local.get(group, {})
            missing = {cid: members[cid] for cid in beat.missing if cid in members}
            if missing:
                lost[group] = missing
        if lost:  # forgotten while this process was away from Redis (or Redis lost its data)
            await self._join(lost)

    def _fail(self, what: str, exc: Exception) -> None:
        if self._failing:
            logger.debug("Presence: could not %s (%r)", what, exc)
        else:
            self._failing = True
            logger.error("Presence store unavailable: could not %s (%r); will retry", what, exc)

    # -- subscribers --------------------------------------------------------------------

    def receive(self, event: dict[str, Any]) -> None:
        """A ``ravyn.presence`` event, from this process or from the layer."""
        if event.get("group") in self.rooms:
            self._queue.put_nowait(("diff", event))

    async def subscribe(self, ws: WebSocket, group: str, room: str | None, callback: PresenceCallback | None) -> None:
        """Send ``ws`` (or ``callback``) the group's state now, and each change after it."""
        state = self.rooms.get(group)
        if state is None:
            state = self.rooms[group] = _Room(group, room)
        if ws in state.subs:
            return
        state.subs[ws] = _Sub(ws, callback)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(("sub", (group, done)))
        await asyncio.wait({done}, timeout=5.0)  # never hold up connect() on a slow store

    def unsubscribe(self, ws: WebSocket, group: str) -> None:
        room = self.rooms.get(group)
        if room is None:
            return
        room.subs.pop(ws, None)
        if not room.subs:
            del self.rooms[group]
            room.cancel_timers()

    async def _work(self) -> None:
        """The one task that changes subscribed rooms and writes their frames: order is kept."""
        while True:
            kind, arg = await self._queue.get()
            try:
                if kind == "diff":
                    await self._on_diff(arg)
                elif kind == "sub":
                    group, done = arg
                    try:
                        await self._on_sub(group)
                    finally:
                        if not done.done():
                            done.set_result(None)
                elif kind == "flush":
                    room = self.rooms.get(arg)
                    if room is not None:
                        room.flush_timer = None
                        await self._flush(room)
                else:
                    room = self.rooms.get(arg)
                    if room is not None and room.behind():
                        await self._load(room)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Presence update of %r failed", kind)

    async def _on_sub(self, group: str) -> None:
        room = self.rooms.get(group)
        if room is None:
            return
        if room.seq is None:
            await self._load(room)
            return
        new = [sub for sub in room.subs.values() if not sub.ready]
        if new:
            if room.state is None:
                room.state = self._frame(room, "presence_state", seq=room.shown_seq, members=dict(room.shown))
            for sub in new:
                sub.ready = True
                await self._send(sub, room.state)

    async def _on_diff(self, event: dict[str, Any]) -> None:
        room = self.rooms.get(event["group"])
        if room is None:
            return
        seq = int(event["seq"])
        room.expect = max(room.expect, seq)
        if room.seq is not None and seq <= room.seq:
            return  # already known (from the state, or a duplicate)
        room.pending[seq] = event
        if len(room.pending) > MAX_PENDING:
            await self._load(room)
        elif room.seq is not None:
            await self._drain(room)

    async def _drain(self, room: _Room) -> None:
        while room.seq is not None and (event := room.pending.pop(room.seq + 1, None)) is not None:
            room.seq += 1
            joins, leaves = event.get("joins") or {}, event.get("leaves") or {}
            for cid in leaves:
                room.members.pop(cid, None)
            room.members.update(joins)
            room.dirty.update(leaves)
            room.dirty.update(joins)
            if room.flush_timer is None and room.batch_interval() == 0:
                await self._flush(room)  # a small room: one diff per change
        await self._schedule_flush(room)
        self._watch(room)

    async def _schedule_flush(self, room: _Room) -> None:
        """Send the room's changes now, or when its batch interval has passed since the last diff."""
        if not room.dirty or room.flush_timer is not None:
            return
        wait = room.flushed + room.batch_interval() - time.monotonic()
        if wait <= 0:
            await self._flush(room)
        else:
            room.flush_timer = asyncio.get_running_loop().call_later(
                wait, self._queue.put_nowait, ("flush", room.group)
            )

    async def _flush(self, room: _Room) -> None:
        """One ``presence_diff`` from what subscribers were last sent to the room's members now."""
        joins: dict[str, Info] = {}
        leaves: dict[str, Info] = {}
        for cid in room.dirty:
            old, new = room.shown.get(cid), room.members.get(cid)
            if old == new:
                continue
            if old is not None:
                leaves[cid] = old
                del room.shown[cid]
            if new is not None:
                joins[cid] = room.shown[cid] = new
        room.dirty.clear()
        if not joins and not leaves:
            return  # what subscribers were sent still holds (and so does the cached state)
        room.shown_seq = room.seq
        room.state = None
        room.flushed = time.monotonic()
        frame = self._frame(room, "presence_diff", joins=joins, leaves=leaves)
        for sub in [s for s in room.subs.values() if s.ready]:
            await self._send(sub, frame)

    def _watch(self, room: _Room) -> None:
        """Reload ``room`` if it stays behind for ``GAP_WAIT`` (a change that never arrived)."""
        if room.behind() and room.seq is not None:
            if room.timer is None:
                room.timer = asyncio.get_running_loop().call_later(GAP_WAIT, self._due, room)
        elif room.timer is not None:
            room.timer.cancel()
            room.timer = None

    def _due(self, room: _Room) -> None:
        room.timer = None
        if self.rooms.get(room.group) is room:
            self._queue.put_nowait(("sync", room.group))

    async def _load(self, room: _Room) -> None:
        """Read the room from the store; new subscribers get its state, the others the difference."""
        try:
            seq, members = await self.backend.state(room.group)
        except Exception as exc:
            self._fail("read a room's state", exc)
            if room.timer is None:
                room.timer = asyncio.get_running_loop().call_later(RETRY, self._due, room)
            return
        if self.rooms.get(room.group) is not room:
            return
        first = room.seq is None
        old = room.members
        room.seq, room.members = seq, members
        room.pending = {n: e for n, e in room.pending.items() if n > seq}
        # The store is the truth: a later number heard of only from a heartbeat is asked again at the next one.
        room.expect = max(seq, *room.pending) if room.pending else seq
        if first:
            room.shown, room.shown_seq, room.state = dict(members), seq, None
        else:  # subscribers get the difference, as one diff
            room.dirty.update(cid for cid, info in members.items() if old.get(cid) != info)
            room.dirty.update(cid for cid in old if cid not in members)
            await self._flush(room)
        await self._on_sub(room.group)
        await self._drain(room)

    @staticmethod
    def _frame(room: _Room, kind: str, **data: Any) -> tuple[dict[str, Any], str]:
        """The frame for callbacks (connection ids, full info) and its JSON text for clients (``public_members``)."""
        frame: dict[str, Any] = {"type": kind, "room": room.room, "seq": room.seq}
        frame.update(data)
        public = {k: public_members(v) if k in ("members", "joins", "leaves") else v for k, v in frame.items()}
        return frame, json.dumps(public, separators=(",", ":"), ensure_ascii=False)

    @staticmethod
    async def _send(sub: _Sub, frame: tuple[dict[str, Any], str]) -> None:
        if sub.callback is not None:
            try:
                await sub.callback(frame[0])
            except Exception:
                logger.exception("Presence callback %r failed", sub.callback)
            return
        ws = sub.ws
        if ws.close_code is not None or ws.application_state is not WebSocketState.CONNECTED:
            return
        try:
            await ws.send({"type": "websocket.send", "text": frame[1]})
        except WebSocketDisconnect:
            pass
