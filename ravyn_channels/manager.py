"""``ConnectionManager``: the seed's broadcast API over Channels groups.

Each server process has one *process channel* on the channel layer (``hub``).
A room belongs to its manager: it is a Channels group named after both
(``rooms.group_name``), so rooms of different managers never meet. A process's
channel is in the group while that process has at least one member of the
room. ``broadcast`` writes to this process's members directly, then sends one
``ravyn.broadcast`` event to the group: each other process delivers it to its
own members. So the layer carries one message per process, not one per
client; the members themselves live in each process's memory and leave when
their connection ends, however it ends.

A room's group carries ``ravyn.broadcast`` events and nothing else, so a plain
Channels consumer that joins it (``manager.group_name(room)``, or a
``ChannelsGroup`` the manager joins explicitly) needs only ``BroadcastMixin``.
Internal events travel on groups only process channels join
(``rooms.private_group``): presence changes (``ravyn.presence``) and messages to
users (``ravyn.user``). With ``presence=True`` a manager also records its members
in a shared store (``ravyn_channels.presence``), so ``count``/``members``/``users``
answer for the whole cluster.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import weakref
from collections.abc import Awaitable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from . import metrics, ops
from .conf import get_settings
from .history import HistoryConfig, HistoryMixin, HistorySetting, Position, Replay
from .hub import BROADCAST, PERSONAL, USER, _Hub, _hub, _hubs
from .lifecycle import RoomCallback, RoomHooks
from .presence import PresenceCallback, PresenceMixin, presence_info, user_key
from .rooms import (
    _VALID_GROUP,
    PRIVATE_PREFIX,
    ChannelsGroup,
    Room,
    group_name,
    manager_group,
    private_group,
    room_label,
)
from .websocket import WebSocket, WebSocketState

__all__ = ["BroadcastMixin", "ChannelsGroup", "ConnectionManager", "broadcast_event", "group_name"]

logger = logging.getLogger("ravyn_channels")


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


def broadcast_event(message: Any, group: str | ChannelsGroup) -> dict[str, Any]:
    """The channel-layer event that broadcasts ``message`` to the members of the Channels group ``group``.

    ``group`` is the group you send it to: ``manager.group_name(room)`` for a
    manager's room, or a ``ChannelsGroup`` (its name) shared with plain consumers.
    Send it from any Channels code::

        name = manager.group_name("lobby")
        await channel_layer.group_send(name, broadcast_event("hi", name))
    """
    name = group.name if isinstance(group, ChannelsGroup) else group
    if not isinstance(name, str) or not (0 < len(name) < 100 and _VALID_GROUP.match(name)):
        raise ValueError(
            f"broadcast_event(..., {group!r}): give the Channels group the event is sent to, "
            "manager.group_name(room) for a manager's room or ChannelsGroup('name') for a shared group."
        )
    return {"type": BROADCAST, "group": name, **_frame(message)}


class BroadcastMixin:
    """For a hand-written ``AsyncWebsocketConsumer``: receive a manager's broadcasts.

    Join the room's group (``groups = ["notifications"]`` for a
    ``ChannelsGroup("notifications")`` the manager connects to, or
    ``manager.group_name(room)`` for one of its own rooms) and mix this in
    before ``AsyncWebsocketConsumer``. The only event type a manager sends to a
    room's group is ``ravyn.broadcast`` (handled here: ``text`` or ``bytes`` is
    sent to the client); presence changes and messages to users travel on
    groups only ravyn_channels' process channels join.
    """

    async def ravyn_broadcast(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event.get("text"), bytes_data=event.get("bytes"))  # type: ignore[attr-defined]


_names: dict[str, itertools.count[int]] = {}
_managers: weakref.WeakValueDictionary[str, ConnectionManager] = weakref.WeakValueDictionary()


def known_managers() -> list[str]:
    """The names of the managers that exist in this process (e.g. created by autodiscovered ``sockets.py``)."""
    return sorted(_managers)


class ConnectionManager(PresenceMixin, HistoryMixin):
    """Rooms of websockets that span every process sharing the channel layer.

    ``name`` identifies the manager across processes (its default room is
    shared by managers of the same name); it defaults to the module that
    creates it. ``layer`` is the ``CHANNEL_LAYERS`` alias (default:
    ``RAVYN_CHANNELS["CHANNEL_LAYER"]``). ``presence=True`` records every
    connection in a store shared by all processes, for ``count``, ``members``,
    ``users`` and presence events (see the README's "Presence").
    ``history=HistoryConfig(...)`` keeps a bounded history of each room's
    broadcasts, delivers them with their position and lets sockets resume
    (``connect(..., since=...)``, ``history()``; see "History and resume").
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        layer: str | None = None,
        presence: bool = False,
        history: HistorySetting | None = None,
    ):
        if name is None:
            module = sys._getframe(1).f_globals.get("__name__", "__main__")
            index = next(_names.setdefault(module, itertools.count()))
            name = module if index == 0 else f"{module}:{index}"
        self.name = name
        _managers.setdefault(name, self)
        self._layer_alias = layer
        self._all = manager_group(name)
        self._local: dict[WebSocket, set[str]] = {}
        self.presence = presence
        self._meta: dict[WebSocket, dict[str, Any]] = {}
        self._user_ids: dict[WebSocket, str] = {}
        if history is not None and not isinstance(history, HistoryConfig) and not callable(history):
            if not hasattr(history, "get"):
                raise TypeError(
                    f"ConnectionManager(history={history!r}): give a HistoryConfig, a mapping room -> "
                    "HistoryConfig, or a callable room -> HistoryConfig | None."
                )
        self._history = history
        #: Room lifecycle hooks (``on_first_join``/``on_last_leave``), and the local rooms' names by group.
        self._hooks: RoomHooks | None = None
        self._labels: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<ConnectionManager {self.name!r} local={len(self._local)}>"

    @property
    def active_connections(self) -> list[WebSocket]:
        """This process's sockets connected through this manager, in join order."""
        return list(self._local)

    def group_name(self, room: Room | None = None) -> str:
        """The Channels group of this manager's ``room`` (``None``: everyone connected through this manager).

        Rooms are this manager's own: another manager's room of the same name is
        another group. A ``ChannelsGroup`` is its own name. Channels code reaches
        the room with ``group_send(manager.group_name(room), broadcast_event(...))``.
        """
        return self._all if room is None else group_name(room, self.name)

    async def _hub(self) -> _Hub:
        return await _hub(self._layer_alias or get_settings().CHANNEL_LAYER)

    # -- membership -----------------------------------------------------------------------

    async def connect(
        self,
        websocket: WebSocket,
        group: Room | None = None,
        *,
        meta: dict[str, Any] | None = None,
        presence: bool | PresenceCallback = False,
        since: str | Position | None = None,
    ) -> Replay | None:
        """Accept ``websocket`` if needed and add it to this manager (and to ``group``).

        With ``ConnectionManager(presence=True)``: ``meta`` (JSON data) is kept with
        the connection in ``members()``; ``presence=True`` sends this socket the
        room's ``presence_state`` and then a ``presence_diff`` per change, as JSON
        text frames (``group=None``: everyone in this manager); an async callable
        instead receives those dicts.

        ``group`` is a room of this manager (any ``str``; other managers' rooms of
        the same name are separate), or ``ChannelsGroup(name)`` to join a Channels
        group shared with hand-written consumers (they then receive this manager's
        broadcasts to it, and nothing else).
        A connection may be in ``RAVYN_CHANNELS["MAX_ROOMS_PER_CONNECTION"]`` rooms of
        this manager (100); one more raises ``TooManyRooms`` (uncaught: close 1008).

        In a room with history (``ConnectionManager(history=...)``) ``since`` is the
        last position the client received (``"<epoch>:<offset>"``): every message
        after it is sent first, in order, then the live ones, each once; a
        position that cannot be continued gets a resync frame instead. Returns a
        ``Replay`` then (``None`` for rooms without history).
        """
        if since is not None and since != "":
            self._require_history(group, "connect(..., since=...)")
        if meta is not None or presence is not False:
            self._require_presence("connect(meta=..., presence=...)")
            if meta is not None:
                meta = _json_copy(meta)
        if websocket.application_state is WebSocketState.CONNECTING:
            await websocket.accept()
        hub = await self._hub()
        groups = self._local.get(websocket)
        if group is not None and groups is not None:
            # Rooms only: not the manager's own groups nor the private groups that carry presence.
            rooms = {name for name in groups if name != self._all and not name.startswith(PRIVATE_PREFIX)}
            _check_room_cap(rooms, self.group_name(group), group)
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
                # Messages to users (ravyn.user) come through the manager's private group.
                users = private_group(self._all)
                groups.add(users)
                await hub.join(users, websocket)
        # Already in the room (connect again, e.g. to add presence): no second replay.
        rejoin = group is not None and groups is not None and self.group_name(group) in groups
        sub = None if rejoin else self._history_subscribe(hub, group, websocket)
        joined = []
        for name in (self._all, *(() if group is None else (self.group_name(group),))):
            if name not in groups:
                groups.add(name)
                await hub.join(name, websocket)
                joined.append(name)
        if self.presence:
            await self._track(hub, websocket, joined, group, meta, presence)
        if group is not None:
            name, label = self.group_name(group), room_label(group) or ""
            self._labels[name] = label  # for lifecycle hooks and the live rooms page
            if self._hooks is not None:
                await self._hooks.sync(hub, name, label)
        if sub is not None:
            return await self._history_resume(hub, group, sub, since)
        return None

    async def _track(
        self,
        hub: _Hub,
        websocket: WebSocket,
        joined: list[str],
        group: Room | None,
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
        groups = self._local.get(websocket)
        if presence is not False and groups is not None:
            callback = None if presence is True else presence
            name = self.group_name(group)
            # Presence changes come through the room's private group, joined before the state is read.
            events = private_group(name)
            if events not in groups:
                groups.add(events)
                await hub.join(events, websocket)
            if self._local.get(websocket) is groups:
                await tracker.subscribe(websocket, name, room_label(group), callback)

    def disconnect(self, websocket: WebSocket, group: Room | None = None) -> Awaitable[None]:
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
            name = self.group_name(group)
            leaving = {name, private_group(name)} & groups
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
        if hub.history is not None:
            hub.history.leave(websocket, leaving)
        tracked: list[str] = []
        if hub.presence is not None and self.presence:
            tracked = hub.presence.untrack(websocket, websocket.connection_id or "", leaving)
        return asyncio.ensure_future(self._leave(hub, websocket, leaving, tracked))

    async def _leave(self, hub: _Hub, websocket: WebSocket, groups: set[str], tracked: list[str]) -> None:
        if tracked and hub.presence is not None:
            await hub.presence.leave(websocket.connection_id or "", tracked)
        for name in groups:
            await hub.leave(name, websocket)
        for name in groups:
            label = self._labels.get(name)
            if label is not None:
                if self._hooks is not None:
                    await self._hooks.sync(hub, name, label)
                if not hub.members.get(name):
                    self._labels.pop(name, None)

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
        group: Room | None = None,
        exclude: WebSocket | Iterable[WebSocket] | None = None,
        *,
        history: bool = True,
    ) -> None:
        """Send ``message`` to every member of ``group`` (default: all) on every process.

        ``str`` goes as a text frame, ``bytes`` as binary, dict/list as JSON text.
        ``exclude`` skips one socket or several (typically the sender). If the
        channel layer fails (Redis down), this process's members still get it and
        one ERROR is logged; the call does not raise. ``history=False`` in a room
        with history sends a plain frame that is not kept (no position, never
        replayed: typing indicators and other passing signals).
        """
        frame = _frame(message)
        name = self.group_name(group)
        hub = await self._hub()
        skip = () if exclude is None else (exclude,) if isinstance(exclude, WebSocket) else tuple(exclude)
        keep = history and self._history is not None
        if keep and await self._history_publish(hub, group, name, message, frame, skip):
            return
        await hub.deliver(name, frame, skip)
        if hub.alone_in(name):
            return
        try:
            event = {"type": BROADCAST, "group": name, "origin": hub.channel, **frame}
            await hub.layer.group_send(name, metrics.stamp(event))
        except Exception as exc:
            logger.error("Broadcast to %r reached this process only: the channel layer failed (%r).", group, exc)

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
                private_group(self._all),
                {"type": USER, "group": self._all, "user": user_id, "origin": hub.channel, **frame},
            )
        except Exception as exc:
            logger.error("Message to user %s reached this process only: the channel layer failed (%r).", user_id, exc)

    # -- from sync code (views, signals, commands, workers) -------------------------------

    async def _group_send(self, message: Any, group: Room | None) -> None:
        layer = get_channel_layer(self._layer_alias or get_settings().CHANNEL_LAYER)
        name = self.group_name(group)
        frame = _frame(message)
        if self._history is not None and await self._history_group_send(layer, group, message, frame):
            return
        await layer.group_send(name, {"type": BROADCAST, "group": name, **frame})

    def broadcast_sync(self, message: Any, group: Room | None = None) -> None:
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
        async_to_sync(layer.group_send)(private_group(self._all), event)

    # -- room lifecycle (ravyn_channels.lifecycle) ----------------------------------------

    def on_first_join(self, callback: RoomCallback) -> RoomCallback:
        """Decorator: ``await callback(room)`` when ``room`` gets its first member in the whole cluster.

        Runs once per transition, on the process where it happened (see the
        README's "Room lifecycle hooks"); a failure is logged.
        """
        self._room_hooks().first.append(callback)
        return callback

    def on_last_leave(self, callback: RoomCallback) -> RoomCallback:
        """Decorator: ``await callback(room)`` when ``room`` loses its last member in the whole cluster.

        Also when the last members were on a process that died (within ``PRESENCE_TTL``).
        """
        self._room_hooks().last.append(callback)
        return callback

    def _room_hooks(self) -> RoomHooks:
        if self._hooks is None:
            self._hooks = RoomHooks(self.name)
        return self._hooks

    # -- closing from anywhere (ravyn_channels.ops) ---------------------------------------

    async def disconnect_user(self, user: Any, *, code: int = ops.DEFAULT_CODE, reason: str = "") -> None:
        """Close every connection of ``user`` (a Django user or pk) through this manager, on every process.

        The client sees ``code`` (default 1008) and ``reason``; its handler gets
        ``WebSocketDisconnect(code, reason)``. ``ravyn_channels.ops.disconnect_user``
        closes the user's sockets of every route, managed or not.
        """
        await ops.send_event(ops.user_event(user, code, reason, manager=self._all))

    def disconnect_user_sync(self, user: Any, *, code: int = ops.DEFAULT_CODE, reason: str = "") -> None:
        """``disconnect_user`` for sync code (views, signals, commands)."""
        ops.send_event_sync(ops.user_event(user, code, reason, manager=self._all))

    async def disconnect_room(
        self, room: Room | None = None, *, code: int = ops.DEFAULT_CODE, reason: str = ""
    ) -> None:
        """Close every connection in ``room`` (``None``: everyone connected through this manager), cluster-wide."""
        await ops.send_event(ops.room_event(self.group_name(room), code, reason))

    def disconnect_room_sync(self, room: Room | None = None, *, code: int = ops.DEFAULT_CODE, reason: str = "") -> None:
        """``disconnect_room`` for sync code."""
        ops.send_event_sync(ops.room_event(self.group_name(room), code, reason))

    async def kick(self, connection: WebSocket | str, *, code: int = ops.DEFAULT_CODE, reason: str = "") -> None:
        """Close one connection (a ``WebSocket`` or its ``connection_id``) on whichever process holds it."""
        await ops.kick(connection, code=code, reason=reason)

    def kick_sync(self, connection: str, *, code: int = ops.DEFAULT_CODE, reason: str = "") -> None:
        """``kick`` for sync code, by ``connection_id``."""
        ops.kick_sync(connection, code=code, reason=reason)


def _check_room_cap(rooms: set[str], name: str, room: str | ChannelsGroup) -> None:
    """Refuse one more room when the connection is in ``MAX_ROOMS_PER_CONNECTION`` of this manager's rooms.

    ``rooms`` are the connection's room groups: not the manager's own group, nor the private
    groups (messages to users, presence events) it joins beside them.
    """
    limit = get_settings().MAX_ROOMS_PER_CONNECTION
    if limit is not None and name not in rooms and len(rooms) >= limit:
        from .limits import TooManyRooms

        raise TooManyRooms(room if isinstance(room, str) else room.name, limit)


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
