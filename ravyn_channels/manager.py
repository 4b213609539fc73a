"""``ConnectionManager``: the seed's broadcast API over Channels groups.

Each server process has one *process channel* on the channel layer. A room is
a Channels group; a process's channel is in it while that process has at
least one member of the room. ``broadcast`` writes to this process's members
directly, then sends one ``ravyn.broadcast`` event to the group: each other
process delivers it to its own members, and plain Channels consumers in the
group (see ``BroadcastMixin``) receive it too. So the layer carries one
message per process, not one per client; the members themselves live in each
process's memory and leave when their connection ends, however it ends.

With ``presence=True`` a manager also records its members in a shared store
(``ravyn_channels.presence``), so ``count``/``members``/``users`` answer for the whole
cluster; ``send_to_user`` is one ``ravyn.user`` event per process.
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
from .presence import PRESENCE, PresenceCallback, PresenceMixin, presence_info, timings, user_key
from .presence.store import open_backend
from .presence.tracker import Tracker
from .websocket import Message, WebSocket, WebSocketDisconnect, WebSocketState

__all__ = ["BroadcastMixin", "ConnectionManager", "broadcast_event", "group_name"]

logger = logging.getLogger("ravyn_channels")

#: Seconds between retries of room joins that failed while the layer was down.
MAINTENANCE_INTERVAL = 2.0

BROADCAST = "ravyn.broadcast"
PERSONAL = "ravyn.personal"
USER = "ravyn.user"

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

    async def ravyn_presence(self, event: dict[str, Any]) -> None:
        """Presence changes of the room (``ConnectionManager(presence=True)``): ignored here."""


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
        #: Presence on this layer (created by the first manager with ``presence=True``).
        self.presence: Tracker | None = None
        #: manager group -> user id -> this process's sockets of that user (for ``send_to_user``).
        self.by_user: dict[str, dict[str, dict[WebSocket, None]]] = {}

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
            for group in [g for g in self.members if g not in self.joined]:
                await self._reconcile(group)
            if renew is not None and loop.time() - renewed >= renew:
                renewed = loop.time()
                for group in [g for g in self.joined if g in self.members]:
                    try:
                        await self.layer.group_add(group, self.channel)
                    except Exception as exc:
                        logger.error("Could not renew room group %r (%r); will retry", group, exc)
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
        elif kind == PRESENCE:
            if self.presence is not None and event.get("origin") != self.channel:
                self.presence.receive(event)
        elif kind == USER:
            if event.get("origin") != self.channel:
                await self.deliver_user(event.get("group", ""), event.get("user", ""), frame)
        else:
            logger.debug("Ignored layer event %r on %s", kind, self.channel)

    async def deliver_one(self, ws: WebSocket, frame: dict[str, Any]) -> None:
        try:
            await ws.send({"type": "websocket.send", **frame})
        except WebSocketDisconnect:
            pass

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
        hub = hubs[alias] = _Hub(layer)
        await hub.start()
    await hub.started.wait()
    return hub


_names: dict[str, itertools.count[int]] = {}


class ConnectionManager(PresenceMixin):
    """Rooms of websockets that span every process sharing the channel layer.

    ``name`` identifies the manager across processes (its default room is
    shared by managers of the same name); it defaults to the module that
    creates it. ``layer`` is the ``CHANNEL_LAYERS`` alias (default:
    ``RAVYN_CHANNELS["CHANNEL_LAYER"]``). ``presence=True`` records every
    connection in a store shared by all processes, for ``count``, ``members``,
    ``users`` and presence events (see the README's "Presence").
    """

    def __init__(self, name: str | None = None, *, layer: str | None = None, presence: bool = False):
        if name is None:
            module = sys._getframe(1).f_globals.get("__name__", "__main__")
            index = next(_names.setdefault(module, itertools.count()))
            name = module if index == 0 else f"{module}:{index}"
        self.name = name
        self._layer_alias = layer
        self._all = f"ravyn.all.{_digest('manager:' + name)}"
        self._local: dict[WebSocket, set[str]] = {}
        self.presence = presence
        self._meta: dict[WebSocket, dict[str, Any]] = {}
        self._user_ids: dict[WebSocket, str] = {}

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

    async def connect(
        self,
        websocket: WebSocket,
        group: str | None = None,
        *,
        meta: dict[str, Any] | None = None,
        presence: bool | PresenceCallback = False,
    ) -> None:
        """Accept ``websocket`` if needed and add it to this manager (and to ``group``).

        With ``ConnectionManager(presence=True)``: ``meta`` (JSON data) is kept with
        the connection in ``members()``; ``presence=True`` sends this socket the
        room's ``presence_state`` and then a ``presence_diff`` per change, as JSON
        text frames (``group=None``: everyone in this manager); an async callable
        instead receives those dicts.

        A connection may be in ``RAVYN_CHANNELS["MAX_ROOMS_PER_CONNECTION"]`` rooms of
        this manager (100); one more raises ``TooManyRooms`` (uncaught: close 1008).
        """
        if meta is not None or presence is not False:
            self._require_presence("connect(meta=..., presence=...)")
            if meta is not None:
                meta = _json_copy(meta)
        if websocket.application_state is WebSocketState.CONNECTING:
            await websocket.accept()
        hub = await self._hub()
        groups = self._local.get(websocket)
        if group is not None and groups is not None:
            _check_room_cap(groups, self.group_name(group), group)
        if groups is None:
            groups = self._local[websocket] = set()
            if websocket.connection_id is None:
                websocket.connection_id = hub.new_id(websocket)
            consumer = websocket.consumer
            if consumer is not None:
                consumer.on_close(lambda: self._forget(websocket))
            user = websocket.scope.get("user")
            if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None) is not None:
                user_id = self._user_ids[websocket] = str(user.pk)
                hub.by_user.setdefault(self._all, {}).setdefault(user_id, {})[websocket] = None
        joined = []
        for name in (self._all, *(() if group is None else (group_name(group),))):
            if name not in groups:
                groups.add(name)
                await hub.join(name, websocket)
                joined.append(name)
        if self.presence:
            await self._track(hub, websocket, joined, group, meta, presence)

    async def _track(
        self,
        hub: _Hub,
        websocket: WebSocket,
        joined: list[str],
        group: str | None,
        meta: dict[str, Any] | None,
        presence: bool | PresenceCallback,
    ) -> None:
        tracker = hub.tracker()
        if meta is not None:
            self._meta[websocket] = meta
        cid = websocket.connection_id or ""
        if joined and websocket in self._local:
            info = presence_info(websocket, self._meta.get(websocket))
            await tracker.track(cid, {name: dict(info) for name in joined})
        if presence is not False and websocket in self._local:
            callback = None if presence is True else presence
            await tracker.subscribe(websocket, self.group_name(group), group, callback)

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
            self._meta.pop(websocket, None)
            user_id = self._user_ids.pop(websocket, None)
            if user_id is not None:
                self._forget_user(websocket, user_id)
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
        tracked: list[str] = []
        if hub.presence is not None and self.presence:
            tracked = hub.presence.untrack(websocket, websocket.connection_id or "", leaving)
        return asyncio.ensure_future(self._leave(hub, websocket, leaving, tracked))

    async def _leave(self, hub: _Hub, websocket: WebSocket, groups: set[str], tracked: list[str]) -> None:
        if tracked and hub.presence is not None:
            await hub.presence.leave(websocket.connection_id or "", tracked)
        for name in groups:
            await hub.leave(name, websocket)

    def _forget_user(self, websocket: WebSocket, user_id: str) -> None:
        hub = self._current_hub()
        users = hub.by_user.get(self._all) if hub is not None else None
        sockets = users.get(user_id) if users is not None else None
        if users is not None and sockets is not None:
            sockets.pop(websocket, None)
            if not sockets:
                del users[user_id]

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

    async def send_to_user(self, user: Any, message: Any) -> None:
        """Send ``message`` to every connection of ``user`` through this manager, on every process.

        ``user`` is a Django user (its ``pk``) or a ``pk`` (int, str or UUID). A
        user's connections are those whose ``websocket.user`` was that logged-in
        user when they connected; this works with or without ``presence``.
        """
        user_id = user_key(user)
        frame = _frame(message)
        hub = await self._hub()
        await hub.deliver_user(self._all, user_id, frame)
        try:
            await hub.layer.group_send(
                self._all, {"type": USER, "group": self._all, "user": user_id, "origin": hub.channel, **frame}
            )
        except Exception as exc:
            logger.error("Message to user %s reached this process only: the channel layer failed (%r).", user_id, exc)

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

    def send_to_user_sync(self, user: Any, message: Any) -> None:
        """``send_to_user`` for sync code."""
        user_id = user_key(user)
        event = {"type": USER, "group": self._all, "user": user_id, **_frame(message)}
        layer = get_channel_layer(self._layer_alias or get_settings().CHANNEL_LAYER)
        async_to_sync(layer.group_send)(self._all, event)


def _check_room_cap(groups: set[str], name: str, room: str) -> None:
    limit = get_settings().MAX_ROOMS_PER_CONNECTION
    if limit is not None and name not in groups and len(groups) - 1 >= limit:  # - 1: the manager's own group
        from .limits import TooManyRooms

        raise TooManyRooms(room, limit)


def _json_copy(meta: Any) -> dict[str, Any]:
    if not isinstance(meta, dict):
        raise TypeError(f"connect(meta=...) takes a dict of JSON data, got {type(meta).__name__}.")
    try:
        copy: dict[str, Any] = json.loads(json.dumps(meta))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"connect(meta=...) must be JSON-serialisable ({exc}).") from None
    return copy


class _Done:
    """An awaitable that is already finished (``disconnect`` with nothing left to do)."""

    def __await__(self) -> Any:
        return iter(())


def _done() -> Awaitable[None]:
    return _Done()
