"""The process channel: this process's one channel on the channel layer, shared by every manager.

A ``_Hub`` exists per event loop and ``CHANNEL_LAYERS`` alias. It keeps the
local members of each Channels group, joins the layer group while the process
has members in it (and leaves it when the last one goes), reads the process
channel and delivers what arrives (broadcasts, personal messages, presence
changes, messages to users) to the right local sockets.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from channels.layers import InMemoryChannelLayer, get_channel_layer

from . import metrics
from .conf import get_settings
from .history.relay import Relay
from .layers import idle_timeout, new_process_channel, prepare_layer
from .outbox import behind, post, ready
from .presence import PRESENCE, timings
from .presence.store import open_backend
from .presence.tracker import Tracker
from .rooms import PRIVATE_PREFIX
from .websocket import Message, WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["BROADCAST", "HANDLERS", "MAINTENANCE_INTERVAL", "PERSONAL", "USER"]

logger = logging.getLogger("ravyn_channels")

#: Seconds between retries of room joins that failed while the layer was down.
MAINTENANCE_INTERVAL = 2.0
#: Layer failures within this many seconds of the previous one belong to the same outage:
#: the first is an ERROR, the rest DEBUG lines.
OUTAGE_QUIET = 30.0

#: Seconds between the loop turns a delivery gives up when a member is behind (``_let_writes_out``).
WRITE_YIELD_INTERVAL = 0.002

BROADCAST = "ravyn.broadcast"
PERSONAL = "ravyn.personal"
USER = "ravyn.user"

#: Handlers of further event types on process channels (``ravyn.close``, ...): ``type -> handler(hub, event)``.
HANDLERS: dict[str, Callable[[_Hub, dict[str, Any]], Awaitable[None]]] = {}


class _Hub:
    """This process's presence on one channel layer (one per event loop and layer alias)."""

    def __init__(self, layer: Any):
        self.layer = layer
        self.channel = ""
        self.members: dict[str, dict[WebSocket, None]] = {}
        self._yielded = 0.0  # loop time of the last turn a delivery gave up (``_let_writes_out``)
        self.joined: set[str] = set()
        #: Groups this process left while the layer failed: their discard is retried.
        self.stale: set[str] = set()
        self.locks: dict[str, asyncio.Lock] = {}
        self.by_id: weakref.WeakValueDictionary[str, WebSocket] = weakref.WeakValueDictionary()
        self.ids = itertools.count(1)
        self.reader: asyncio.Task[None] | None = None
        self.maintainer: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self._last_failure = -OUTAGE_QUIET
        #: Presence on this layer (created by the first manager with ``presence=True``).
        self.presence: Tracker | None = None
        #: manager group -> user id -> this process's sockets of that user (for ``send_to_user``).
        self.by_user: dict[str, dict[str, dict[WebSocket, None]]] = {}
        #: Room history on this layer (created by the first manager with ``history=``).
        self.history: Relay | None = None

    async def start(self) -> None:
        self.channel = await new_process_channel(self.layer)
        loop = asyncio.get_running_loop()
        self.reader = loop.create_task(self._read())
        self.maintainer = loop.create_task(self._maintain())
        self.started.set()

    def new_id(self, ws: WebSocket) -> str:
        cid = f"{self.channel}#{next(self.ids)}"
        self.by_id[cid] = ws
        return cid

    async def join(self, group: str, ws: WebSocket) -> None:
        self.members.setdefault(group, {})[ws] = None
        await self._reconcile(group)

    async def leave(self, group: str, ws: WebSocket) -> None:
        members = self.members.get(group)
        if members is not None:
            members.pop(ws, None)
            if not members:
                del self.members[group]
        await self._reconcile(group)

    async def _reconcile(self, group: str) -> None:
        """Make the layer's membership of this process channel match the local members.

        Leaving always discards on the layer when no local member is left, whatever
        ``joined`` says (``group_discard`` is idempotent): the record can never keep
        a membership alive on the layer. A layer failure (Redis down) is logged, not
        raised: local members keep working, and the maintenance loop retries (the
        join, or the discard) until the layer is back.
        """
        lock = self.locks.setdefault(group, asyncio.Lock())
        async with lock:
            want = group in self.members
            try:
                if want:
                    self.stale.discard(group)
                    if group not in self.joined:
                        await self.layer.group_add(group, self.channel)
                        self.joined.add(group)
                else:
                    self.joined.discard(group)
                    self.stale.add(group)
                    await self.layer.group_discard(group, self.channel)
                    self.stale.discard(group)
            except Exception as exc:
                self._failed("Channel layer unavailable for room group %r (%r); will retry", group, exc)
        if not lock.locked() and group not in self.members:
            self.locks.pop(group, None)

    def _failed(self, message: str, *args: Any) -> None:
        """Log a layer failure: an ERROR for the first of an outage, DEBUG for the ones that follow it."""
        metrics.event("layer_errors")
        now = asyncio.get_running_loop().time()
        level = logging.DEBUG if now - self._last_failure < OUTAGE_QUIET else logging.ERROR
        self._last_failure = now
        logger.log(level, message, *args)

    def alone_in(self, group: str) -> bool:
        """Whether a ``group_send`` to ``group`` could reach no channel but this process's.

        Only an in-memory layer can tell (its groups live in this process): with
        nobody else in the group, a broadcast need not go through it (its
        ``group_send`` runs a task per channel and wakes this hub's reader, only
        for the reader to drop its own broadcast).
        """
        layer = self.layer
        if type(layer) is not InMemoryChannelLayer:
            return False
        channels = layer.groups.get(group)
        return not channels or (len(channels) == 1 and self.channel in channels)

    def tracker(self) -> Tracker:
        """This process's presence on the layer, started on first use."""
        if self.presence is None:
            ttl = get_settings().PRESENCE_TTL
            self.presence = Tracker(self.layer, self.channel, open_backend(self.layer, timings(ttl)[0]), ttl)
        return self.presence

    async def _maintain(self) -> None:
        """Retry joins that failed while the layer was down; renew memberships before ``group_expiry``.

        Layers that expire group memberships (channels-redis's ``RedisChannelLayer``,
        the in-memory layer; 24 h by default) would otherwise stop sending a room's
        messages to a process that has been in it that long.
        """
        expiry = getattr(self.layer, "group_expiry", None)
        renew = expiry / 3 if isinstance(expiry, (int, float)) and expiry > 0 else None
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL if renew is None else min(MAINTENANCE_INTERVAL, renew))
            for group in [g for g in self.members if g not in self.joined] + list(self.stale):
                await self._reconcile(group)
            if renew is not None and loop.time() - renewed >= renew:
                renewed = loop.time()
                for group in [g for g in self.joined if g in self.members]:
                    try:
                        await self.layer.group_add(group, self.channel)
                    except Exception as exc:
                        self._failed("Could not renew room group %r (%r); will retry", group, exc)
                        self.joined.discard(group)

    async def deliver(self, group: str, frame: dict[str, Any], exclude: Iterable[WebSocket] = ()) -> int:
        """Send a frame to this process's members of ``group``; returns how many got it."""
        members = self.members.get(group)
        if not members:
            return 0
        message: Message = {"type": "websocket.send", **frame}
        skip = set(exclude)
        sent = 0
        for ws in list(members):
            if ws in skip or ws.application_state is not WebSocketState.CONNECTED or ws.close_code is not None:
                continue
            if ready(ws):  # the common case, without one more coroutine per member
                try:
                    await ws.send(message)
                except (WebSocketDisconnect, OSError):  # gone (uvicorn's ClientDisconnected is an OSError)
                    continue
                sent += 1
            elif await post(ws, message):
                sent += 1
        if behind():
            await self._let_writes_out()
        return sent

    async def _let_writes_out(self) -> None:
        """A member is behind: let the loop write the buffers out before the next delivery.

        Never waiting for that member (``SEND_BUFFER_LIMIT`` drops one that does not read),
        and at most once per ``WRITE_YIELD_INTERVAL``: a member that stays behind (it does not
        read) would otherwise cost every broadcast of its room a turn of the loop.
        """
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._yielded >= WRITE_YIELD_INTERVAL:
            self._yielded = now
            await asyncio.sleep(0)

    async def _read(self) -> None:
        delay = 0.5
        failing = False
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if await idle_timeout(self.layer, self.channel, exc):
                    # The blocking read outlived the connection's socket_timeout while
                    # nothing arrived (see layers.py): not a failure; read again at once.
                    logger.debug("Channel layer read timed out while idle (%r); reading again", exc)
                    continue
                failing = True
                self._failed("Channel layer receive failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                # The layer may have lost this process's memberships (Redis restarted):
                # the maintenance loop joins every room with members again.
                self.joined.clear()
                continue
            if failing:
                failing = False
                logger.info("Channel layer receive works again")
                metrics.event("layer_reconnects")
            delay = 0.5
            try:
                await self._dispatch(event)
            except Exception:
                logger.exception("Could not deliver layer event %r", event.get("type"))

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        frame = {k: event[k] for k in ("text", "bytes") if event.get(k) is not None}
        if kind == BROADCAST:
            group = event.get("group")
            # A private group's members are not a room: nothing is broadcast to them.
            if event.get("origin") != self.channel and isinstance(group, str) and not group.startswith(PRIVATE_PREFIX):
                metrics.arrived(event)
                # A broadcast with a position goes through the room's history relay (in offset order).
                if "position" not in event or self.history is None or not await self.history.receive(group, event):
                    await self.deliver(group, frame)
        elif kind == PERSONAL:
            ws = self.by_id.get(event.get("to", ""))
            if ws is not None:
                await self.deliver_one(ws, frame)
        elif kind == PRESENCE:
            if self.presence is not None and event.get("origin") != self.channel:
                self.presence.receive(event)
        elif kind == USER:
            if event.get("origin") != self.channel:
                await self.deliver_user(event.get("group", ""), event.get("user", ""), frame)
        elif isinstance(kind, str) and kind in HANDLERS:
            await HANDLERS[kind](self, event)
        else:
            logger.debug("Ignored layer event %r on %s", kind, self.channel)

    async def deliver_one(self, ws: WebSocket, frame: dict[str, Any]) -> None:
        if ws.application_state is WebSocketState.CONNECTED and ws.close_code is None:
            await post(ws, {"type": "websocket.send", **frame})
            if behind():
                await self._let_writes_out()

    async def deliver_user(self, group: str, user_id: str, frame: dict[str, Any]) -> None:
        """Send a frame to this process's sockets of ``user_id`` in a manager's ``group``."""
        for ws in list(self.by_user.get(group, {}).get(user_id, ())):
            if ws.application_state is WebSocketState.CONNECTED and ws.close_code is None:
                await self.deliver_one(ws, frame)


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Hub]] = weakref.WeakKeyDictionary()


async def _hub(alias: str) -> _Hub:
    loop = asyncio.get_running_loop()
    hubs = _hubs.setdefault(loop, {})
    layer = get_channel_layer(alias)
    if layer is None:
        raise RuntimeError(
            f"ConnectionManager needs a channel layer, and CHANNEL_LAYERS has no {alias!r}. Add "
            "CHANNEL_LAYERS = {'default': {'BACKEND': 'channels.layers.InMemoryChannelLayer'}} "
            "(one process) or a channels-redis layer (many processes) to your settings."
        )
    hub = hubs.get(alias)
    if hub is None or hub.layer is not layer:
        prepare_layer(layer)
        hub = hubs[alias] = _Hub(layer)
        await hub.start()
    await hub.started.wait()
    return hub
