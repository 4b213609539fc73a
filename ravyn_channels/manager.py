"""``ConnectionManager``: the seed's broadcast API over Channels groups.

Each server process has one *process channel* on the channel layer. A room is
a Channels group; a process's channel is in it while that process has at
least one member of the room. ``broadcast`` writes to this process's members
directly, then sends one ``ravyn.broadcast`` event to the group: each other
process delivers it to its own members, and plain Channels consumers in the
group (see ``BroadcastMixin``) receive it too. So the layer carries one
message per process, not one per client; the members themselves live in each
process's memory and leave when their connection ends, however it ends.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
import re
import sys
import unicodedata
import weakref
from collections.abc import Awaitable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .conf import get_settings
from .websocket import Message, WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["BroadcastMixin", "ConnectionManager", "broadcast_event", "group_name"]

logger = logging.getLogger("ravyn_channels")

#: Seconds between retries of room joins that failed while the layer was down.
MAINTENANCE_INTERVAL = 2.0

BROADCAST = "ravyn.broadcast"
PERSONAL = "ravyn.personal"

_VALID_GROUP = re.compile(r"^[a-zA-Z\d\-_.]+$")
_SLUG_JUNK = re.compile(r"[^a-zA-Z\d\-_]+")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def group_name(room: str) -> str:
    """The Channels group that carries ``room``: any ``str`` maps to a valid, distinct name.

    Names Channels already accepts (ASCII letters, digits, ``-_.``, under 100
    characters) are used as they are, so existing groups interoperate; any
    other name becomes ``ravyn.<ascii slug>.<blake2b digest>``.
    """
    if not isinstance(room, str):
        raise TypeError(f"Room names are str, got {type(room).__name__}: {room!r}.")
    if 0 < len(room) < 100 and _VALID_GROUP.match(room) and not room.startswith("ravyn."):
        return room
    ascii_room = unicodedata.normalize("NFKD", room).encode("ascii", "ignore").decode("ascii")
    slug = _SLUG_JUNK.sub("-", ascii_room).strip("-")[:40]
    return f"ravyn.{slug}.{_digest(room)}" if slug else f"ravyn.{_digest(room)}"


def _frame(message: Any) -> dict[str, Any]:
    """str -> text, bytes -> binary, anything JSON-serialisable (dict, list) -> JSON text."""
    if isinstance(message, str):
        return {"text": message}
    if isinstance(message, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(message)}
    try:
        return {"text": json.dumps(message, separators=(",", ":"), ensure_ascii=False)}
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"Cannot broadcast {type(message).__name__}: send str (text), bytes (binary) "
            f"or JSON-serialisable data ({exc})."
        ) from None


def broadcast_event(message: Any, *, room: str) -> dict[str, Any]:
    """The channel-layer event that broadcasts ``message`` to the members of ``room``.

    Send it from any Channels code:
    ``await layer.group_send(group_name("lobby"), broadcast_event("hi", room="lobby"))``.
    """
    return {"type": BROADCAST, "group": group_name(room), **_frame(message)}


class BroadcastMixin:
    """For a hand-written ``AsyncWebsocketConsumer``: receive a manager's broadcasts.

    Join the room's group (``groups = [group_name("lobby")]`` or ``group_add``)
    and mix this in before ``AsyncWebsocketConsumer``.
    """

    async def ravyn_broadcast(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event.get("text"), bytes_data=event.get("bytes"))  # type: ignore[attr-defined]


class _Hub:
    """This process's presence on one channel layer (one per event loop and layer alias)."""

    def __init__(self, layer: Any):
        self.layer = layer
        self.channel = ""
        self.members: dict[str, dict[WebSocket, None]] = {}
        self.joined: set[str] = set()
        self.locks: dict[str, asyncio.Lock] = {}
        self.by_id: weakref.WeakValueDictionary[str, WebSocket] = weakref.WeakValueDictionary()
        self.ids = itertools.count(1)
        self.reader: asyncio.Task[None] | None = None
        self.maintainer: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    async def start(self) -> None:
        self.channel = await self.layer.new_channel()
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

        A layer failure (Redis down) is logged, not raised: local members keep
        working, and the maintenance loop retries until the layer is back.
        """
        lock = self.locks.setdefault(group, asyncio.Lock())
        async with lock:
            want = group in self.members
            try:
                if want and group not in self.joined:
                    await self.layer.group_add(group, self.channel)
                    self.joined.add(group)
                elif not want and group in self.joined:
                    self.joined.discard(group)
                    await self.layer.group_discard(group, self.channel)
            except Exception as exc:
                logger.error("Channel layer unavailable for room group %r (%r); will retry", group, exc)
        if not lock.locked() and group not in self.members:
            self.locks.pop(group, None)

    async def _maintain(self) -> None:
        """Retry joins that failed while the layer was down."""
        while True:
            await asyncio.sleep(MAINTENANCE_INTERVAL)
            for group in [g for g in self.members if g not in self.joined]:
                await self._reconcile(group)

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
            try:
                await ws.send(message)
                sent += 1
            except WebSocketDisconnect:
                pass
        return sent

    async def _read(self) -> None:
        delay = 0.5
        while True:
            try:
                event = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.error("Channel layer receive failed (%r); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                # The layer may have lost this process's memberships (Redis restarted):
                # the maintenance loop joins every room with members again.
                self.joined.clear()
                continue
            delay = 0.5
            try:
                await self._dispatch(event)
            except Exception:
                logger.exception("Could not deliver layer event %r", event.get("type"))

    async def _dispatch(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        frame = {k: event[k] for k in ("text", "bytes") if event.get(k) is not None}
        if kind == BROADCAST:
            if event.get("origin") != self.channel and "group" in event:
                await self.deliver(event["group"], frame)
        elif kind == PERSONAL:
            ws = self.by_id.get(event.get("to", ""))
            if ws is not None:
                await self.deliver_one(ws, frame)
        else:
            logger.debug("Ignored layer event %r on %s", kind, self.channel)

    async def deliver_one(self, ws: WebSocket, frame: dict[str, Any]) -> None:
        try:
            await ws.send({"type": "websocket.send", **frame})
        except WebSocketDisconnect:
            pass


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
        hub = hubs[alias] = _Hub(layer)
        await hub.start()
    await hub.started.wait()
    return hub


_names: dict[str, itertools.count[int]] = {}


class ConnectionManager:
    """Rooms of websockets that span every process sharing the channel layer.

    ``name`` identifies the manager across processes (its default room is
    shared by managers of the same name); it defaults to the module that
    creates it. ``layer`` is the ``CHANNEL_LAYERS`` alias (default:
    ``RAVYN_CHANNELS["CHANNEL_LAYER"]``).
    """

    def __init__(self, name: str | None = None, *, layer: str | None = None):
        if name is None:
            module = sys._getframe(1).f_globals.get("__name__", "__main__")
            index = next(_names.setdefault(module, itertools.count()))
            name = module if index == 0 else f"{module}:{index}"
        self.name = name
        self._layer_alias = layer
        self._all = f"ravyn.all.{_digest('manager:' + name)}"
        self._local: dict[WebSocket, set[str]] = {}

    def __repr__(self) -> str:
        return f"<ConnectionManager {self.name!r} local={len(self._local)}>"

    @property
    def active_connections(self) -> list[WebSocket]:
        """This process's sockets connected through this manager, in join order."""
        return list(self._local)

    def group_name(self, room: str | None = None) -> str:
        """The Channels group of ``room`` (``None``: everyone connected through this manager)."""
        return self._all if room is None else group_name(room)

    async def _hub(self) -> _Hub:
        return await _hub(self._layer_alias or get_settings().CHANNEL_LAYER)

    # -- membership -----------------------------------------------------------------------

    async def connect(self, websocket: WebSocket, group: str | None = None) -> None:
        """Accept ``websocket`` if needed and add it to this manager (and to ``group``)."""
        if websocket.application_state is WebSocketState.CONNECTING:
            await websocket.accept()
        hub = await self._hub()
        groups = self._local.get(websocket)
        if groups is None:
            groups = self._local[websocket] = set()
            if websocket.connection_id is None:
                websocket.connection_id = hub.new_id(websocket)
            consumer = websocket.consumer
            if consumer is not None:
                consumer.on_close(lambda: self._forget(websocket))
        for name in (self._all, *(() if group is None else (group_name(group),))):
            if name not in groups:
                groups.add(name)
                await hub.join(name, websocket)

    def disconnect(self, websocket: WebSocket, group: str | None = None) -> Awaitable[None]:
        """Remove ``websocket`` (from ``group`` only, if given). Works with or without ``await``.

        Broadcasts stop reaching it at once; leaving the layer group (when it was
        this process's last member) finishes in the background unless awaited.
        """
        groups = self._local.get(websocket)
        if not groups:
            return _done()
        if group is None:
            leaving = set(groups)
            del self._local[websocket]
        else:
            name = group_name(group)
            leaving = {name} & groups
            groups -= leaving
        if not leaving:
            return _done()
        hub = self._current_hub()
        if hub is None:
            return _done()
        for name in leaving:
            members = hub.members.get(name)
            if members is not None:
                members.pop(websocket, None)
        return asyncio.ensure_future(self._leave(hub, websocket, leaving))

    async def _leave(self, hub: _Hub, websocket: WebSocket, groups: set[str]) -> None:
        for name in groups:
            await hub.leave(name, websocket)

    async def _forget(self, websocket: WebSocket) -> None:
        await self.disconnect(websocket)

    def _current_hub(self) -> _Hub | None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return _hubs.get(loop, {}).get(self._layer_alias or get_settings().CHANNEL_LAYER)

    # -- sending --------------------------------------------------------------------------

    async def broadcast(
        self,
        message: Any,
        group: str | None = None,
        exclude: WebSocket | Iterable[WebSocket] | None = None,
    ) -> None:
        """Send ``message`` to every member of ``group`` (default: all) on every process.

        ``str`` goes as a text frame, ``bytes`` as binary, dict/list as JSON text.
        ``exclude`` skips one socket or several (typically the sender). If the
        channel layer fails (Redis down), this process's members still get it and
        one ERROR is logged; the call does not raise.
        """
        frame = _frame(message)
        name = self.group_name(group)
        hub = await self._hub()
        skip = () if exclude is None else (exclude,) if isinstance(exclude, WebSocket) else tuple(exclude)
        await hub.deliver(name, frame, skip)
        try:
            await hub.layer.group_send(name, {"type": BROADCAST, "group": name, "origin": hub.channel, **frame})
        except Exception as exc:
            logger.error(
                "Broadcast to %r reached this process only: the channel layer failed (%r).", group, exc
            )

    async def send_personal_message(self, message: Any, websocket: WebSocket | str) -> None:
        """Send ``message`` to one socket: a ``WebSocket``, or a ``connection_id`` on any process."""
        frame = _frame(message)
        hub = await self._hub()
        if isinstance(websocket, WebSocket):
            await hub.deliver_one(websocket, frame)
            return
        channel, _, _ = websocket.rpartition("#")
        if channel == hub.channel:
            target = hub.by_id.get(websocket)
            if target is not None:
                await hub.deliver_one(target, frame)
        elif channel:
            await hub.layer.send(channel, {"type": PERSONAL, "to": websocket, **frame})
        else:
            raise ValueError(f"{websocket!r} is not a connection_id (WebSocket.connection_id).")

    # -- from sync code (views, signals, commands, workers) -------------------------------

    async def _group_send(self, message: Any, group: str | None) -> None:
        layer = get_channel_layer(self._layer_alias or get_settings().CHANNEL_LAYER)
        name = self.group_name(group)
        await layer.group_send(name, {"type": BROADCAST, "group": name, **_frame(message)})


    def broadcast_sync(self, message: Any, group: str | None = None) -> None:
        """``broadcast`` for sync code: goes through the layer to every process's members."""
        async_to_sync(self._group_send)(message, group)

    def send_personal_message_sync(self, message: Any, connection_id: str) -> None:
        """``send_personal_message`` for sync code, by ``connection_id``."""
        channel, _, _ = connection_id.rpartition("#")
        if not channel:
            raise ValueError(f"{connection_id!r} is not a connection_id (WebSocket.connection_id).")
        layer = get_channel_layer(self._layer_alias or get_settings().CHANNEL_LAYER)
        async_to_sync(layer.send)(channel, {"type": PERSONAL, "to": connection_id, **_frame(message)})


class _Done:
    """An awaitable that is already finished (``disconnect`` with nothing left to do)."""

    def __await__(self) -> Any:
        return iter(())


def _done() -> Awaitable[None]:
    return _Done()
