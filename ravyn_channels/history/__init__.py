"""History: a bounded log per room, positions on every broadcast, and resume without gap or duplicate.

``ConnectionManager(history=HistoryConfig(...))`` records every broadcast to a
room in a store all processes share (``store``: Redis Streams for
channels-redis, memory for the in-memory layer) and delivers it wrapped in an
envelope carrying its ``Position``; ``connect(ws, group=..., since=position)``
replays what a socket missed before its live messages (``relay``). This module
holds the public types and the manager's history methods (``HistoryMixin``).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from ..conf import get_settings
from ..rooms import Room, room_label
from .relay import Relay, Render, Resync, RoomLog, _Sub, event_fields
from .store import Entry, Limits, Slice, open_store

if TYPE_CHECKING:
    from ..websocket import WebSocket

__all__ = [
    "Envelope",
    "HistoryConfig",
    "HistoryMessage",
    "HistoryMixin",
    "HistoryPage",
    "HistorySetting",
    "HistoryUnavailable",
    "Position",
    "Replay",
    "json_envelope",
]

logger = logging.getLogger("ravyn_channels")

_POSITION = re.compile(r"^([0-9A-Za-z]{1,64}):(0|[1-9][0-9]{0,17})$")


class HistoryUnavailable(ConnectionError):
    """The history store (Redis) could not be reached: the message was not sent, or the replay not read."""


@dataclass(frozen=True, order=True)
class Position:
    """Where a message stands in its room's history: the history's ``epoch`` and the message's ``offset``.

    Offsets are 1, 2, 3… per room; the epoch is a random token that changes when
    the room's history is lost, so a position from before cannot be confused
    with one after. ``str(position)`` is ``"<epoch>:<offset>"`` (the form clients
    keep and send back); ``Position.parse`` reads it.
    """

    epoch: str
    offset: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"

    @classmethod
    def parse(cls, value: str | Position) -> Position:
        """Read ``"<epoch>:<offset>"``; ``ValueError`` names what is wrong."""
        if isinstance(value, Position):
            return value
        if not isinstance(value, str):
            raise ValueError(f"A position is a str '<epoch>:<offset>', got {type(value).__name__}.")
        match = _POSITION.match(value)
        if match is None:
            raise ValueError(
                f"{value[:80]!r} is not a position: expected '<epoch>:<offset>' as sent in the "
                "'position' of a history message (an alphanumeric epoch, a decimal offset)."
            )
        return cls(match[1], int(match[2]))


@dataclass(frozen=True)
class Envelope:
    """What a socket of a room with history is sent: a ``"message"`` or a ``"resync"``.

    ``position`` is the message's position, or, for a resync, the position the
    socket stands at now (messages after it follow). ``kind`` and ``data`` are
    the message as broadcast (``"text"``: a str, ``"json"``: JSON text,
    ``"bytes"``); ``message`` gives it back as it was passed to ``broadcast``.
    """

    type: str
    room: str | None
    position: Position
    kind: str | None = None
    data: str | bytes | None = None
    reason: str | None = None

    @property
    def message(self) -> Any:
        return _decode(self.kind, self.data)


def _decode(kind: str | None, data: str | bytes | None) -> Any:
    if kind == "json" and isinstance(data, str):
        return json.loads(data)
    return data


def json_envelope(envelope: Envelope) -> str:
    """The default envelope: one JSON text frame per message or resync.

    ``{"type": "message", "room": "lobby", "position": "<epoch>:<offset>", "data": ...}``
    where ``data`` is the broadcast str, or the broadcast JSON value, or for
    bytes the base64 text with ``"encoding": "base64"``;
    ``{"type": "resync", "room": "lobby", "position": "<epoch>:<offset>", "reason": "..."}``.
    """
    room = json.dumps(envelope.room, ensure_ascii=False)
    if envelope.type == "resync":
        head = f'{{"type":"resync","room":{room},"position":"{envelope.position}"'
        return f'{head},"reason":{json.dumps(envelope.reason)}}}'
    return _message_text(f'{{"type":"{envelope.type}","room":{room},"position":"', envelope.position, envelope)


_dumps = json.JSONEncoder(ensure_ascii=False).encode


def _message_text(head: str, position: object, item: Envelope | Entry) -> str:
    """A message's JSON envelope: ``head`` (up to the opening quote of the position), the position, the data."""
    data = item.data
    if item.kind == "json" and isinstance(data, str):
        return f'{head}{position}","data":{data}}}'
    if isinstance(data, bytes):
        return f'{head}{position}","data":"{base64.b64encode(data).decode("ascii")}","encoding":"base64"}}'
    return f'{head}{position}","data":{_dumps(data)}}}'


@dataclass(frozen=True)
class HistoryConfig:
    """A room's history: at most ``max_messages`` messages, none older than ``max_age`` seconds.

    ``on_join``: how many of the newest messages a socket that connects without
    a position is sent at once (``HistoryConfig.latest()`` keeps one and sends
    it to every joiner: scores, dashboards, prices). ``envelope`` turns an
    ``Envelope`` into what is sent (str, bytes or JSON data, as ``broadcast``
    takes); by default ``json_envelope``.
    """

    max_messages: int = 1000
    max_age: float | None = 3600.0
    on_join: int = 0
    envelope: Callable[[Envelope], Any] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.max_messages, bool) or not isinstance(self.max_messages, int) or self.max_messages < 1:
            raise ValueError(f"HistoryConfig(max_messages={self.max_messages!r}): give a whole number >= 1.")
        if self.max_age is not None and (
            isinstance(self.max_age, bool) or not isinstance(self.max_age, (int, float)) or not self.max_age > 0
        ):
            raise ValueError(f"HistoryConfig(max_age={self.max_age!r}): give seconds > 0, or None for no age bound.")
        on_join = self.on_join
        if isinstance(on_join, bool) or not isinstance(on_join, int) or not 0 <= on_join <= self.max_messages:
            raise ValueError(
                f"HistoryConfig(on_join={self.on_join!r}): give a whole number from 0 to max_messages "
                f"({self.max_messages})."
            )
        if self.envelope is not None and not callable(self.envelope):
            raise ValueError("HistoryConfig(envelope=...) takes a callable (Envelope -> str, bytes or JSON data).")

    @classmethod
    def latest(cls, max_age: float | None = None, envelope: Callable[[Envelope], Any] | None = None) -> HistoryConfig:
        """A "latest value" room: keeps its last message only and sends it to every joiner."""
        return cls(max_messages=1, max_age=max_age, on_join=1, envelope=envelope)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_messages, self.max_age)


#: ``history=``: one config for every room, a mapping room -> config, or a callable room -> config or None.
HistorySetting: TypeAlias = HistoryConfig | Mapping[Room, HistoryConfig] | Callable[[Room], HistoryConfig | None]


@dataclass(frozen=True)
class HistoryMessage:
    """One message from a room's history, as it was broadcast."""

    position: Position
    message: Any
    #: Unix time (seconds, the store's clock) when it was broadcast.
    time: float


@dataclass(frozen=True)
class HistoryPage:
    """What ``manager.history()`` found.

    ``position`` is where a client that shows ``messages`` continues from:
    ``connect(..., since=page.position)`` delivers exactly the messages after
    them. ``resync`` is set (``"malformed"``, ``"epoch"``, ``"future"``,
    ``"expired"``) when ``since`` could not be continued: ``messages`` are then
    the newest ones, as without ``since``.
    """

    messages: list[HistoryMessage]
    position: Position
    #: The position of the room's last message (its offset is 0 when it has none).
    head: Position
    resync: str | None = None


@dataclass(frozen=True)
class Replay:
    """What ``connect(..., since=...)`` did for a room with history.

    ``replayed`` messages were sent from the history; ``resync`` is the reason
    (``"malformed"``, ``"epoch"``, ``"future"``, ``"expired"``) when the socket
    was sent a resync instead; ``position`` is where the socket stood once the
    replay was sent (live messages continue from there).
    """

    position: Position
    replayed: int
    resync: str | None = None


def _kind(message: Any, frame: dict[str, Any]) -> tuple[str, str | bytes]:
    if isinstance(message, str):
        return "text", message
    if "bytes" in frame:
        return "bytes", frame["bytes"]
    return "json", frame["text"]


_renderers: dict[tuple[str | None, HistoryConfig], Render] = {}


def _renderer(label: str | None, config: HistoryConfig) -> Render:
    """The room's renderer, shared by its sockets (so a message is enveloped once per process)."""
    key = (label, config)
    render = _renderers.get(key)
    if render is None:
        if len(_renderers) > 4096:
            _renderers.clear()
        render = _renderers[key] = _new_renderer(label, config)
    return render


def _new_renderer(label: str | None, config: HistoryConfig) -> Render:
    envelope = config.envelope
    # The default envelope of a message, without building an Envelope: the same text as json_envelope.
    head = f'{{"type":"message","room":{json.dumps(label, ensure_ascii=False)},"position":"'

    def render(item: Entry | Resync) -> dict[str, Any]:
        if isinstance(item, Resync):
            env = Envelope("resync", label, Position(item.epoch, item.offset), reason=item.reason)
        elif envelope is None:
            return {"text": _message_text(head, f"{item.epoch}:{item.offset}", item)}
        else:
            env = Envelope("message", label, Position(item.epoch, item.offset), item.kind, item.data)
        if envelope is None:
            return {"text": json_envelope(env)}
        from ..manager import _frame

        return _frame(envelope(env))

    return render


def relay_for(hub: Any) -> Relay:
    """The process channel's relay (created, with its store, on first use)."""
    relay: Relay | None = hub.history
    if relay is None:
        relay = hub.history = Relay(hub.members, open_store(hub.layer))
    return relay


def _messages(found: Slice) -> list[HistoryMessage]:
    return [HistoryMessage(Position(e.epoch, e.offset), _decode(e.kind, e.data), e.time) for e in found.entries]


class HistoryMixin:
    """The history part of ``ConnectionManager`` (``history=...``)."""

    name: str
    _history: HistorySetting | None
    _layer_alias: str | None

    def group_name(self, room: Room | None = None) -> str:
        raise NotImplementedError

    async def _hub(self) -> Any:
        raise NotImplementedError

    def history_config(self, room: Room | None = None) -> HistoryConfig | None:
        """The history of ``room`` in this manager (``None``: the room keeps none).

        ``room=None`` (everyone connected through the manager) never keeps history:
        sockets join it whatever room they are in, so its broadcasts stay plain frames.
        """
        setting = self._history
        if setting is None or room is None:
            return None
        if isinstance(setting, HistoryConfig):
            return setting
        found = setting.get(room) if isinstance(setting, Mapping) else setting(room)
        if found is not None and not isinstance(found, HistoryConfig):
            raise TypeError(f"history=... gave {found!r} for room {room!r}: expected a HistoryConfig or None.")
        return found

    def _require_history(self, room: Room | None, what: str) -> HistoryConfig:
        config = self.history_config(room)
        if config is None:
            raise ValueError(
                f"{what}: room {room_label(room)!r} of manager {self.name!r} keeps no history. Create the "
                "manager with ConnectionManager(..., history=HistoryConfig(...)) (or a mapping/callable "
                "that gives this room one)."
            )
        return config

    # -- the seam with ConnectionManager -------------------------------------------------

    def _history_subscribe(self, hub: Any, room: Room | None, websocket: WebSocket) -> _Sub | None:
        """Before ``connect`` joins the layer group: start queueing the room's live messages for ``websocket``."""
        config = self.history_config(room)
        if config is None:
            return None
        relay = relay_for(hub)
        return relay.subscribe(self.group_name(room), config.limits, websocket, _renderer(room_label(room), config))

    async def _history_resume(self, hub: Any, room: Room | None, sub: _Sub, since: str | Position | None) -> Replay:
        """After ``connect`` joined: send the replay (or a resync), then the queued live messages."""
        config = self._require_history(room, "connect(..., since=...)")
        relay = relay_for(hub)
        name = self.group_name(room)
        log: RoomLog = relay.room(name, config.limits)
        if log.subs.get(sub.ws) is not sub:
            log.subs[sub.ws] = sub
        limits = config.limits
        try:
            async with log.lock:
                await log.start()
            position: Position | None = None
            reason: str | None = None
            if since is not None and since != "":
                try:
                    position = Position.parse(since)
                except ValueError:
                    reason = "malformed"
            found: Slice | None = None
            if position is not None:
                found = await relay.store.read(name, position.offset, None, limits)
                if found.epoch != position.epoch:
                    reason = "epoch"
                elif position.offset > found.head:
                    reason = "future"
                elif position.offset < found.first - 1:
                    reason = "expired"
            if found is None or reason is not None:
                found = await relay.store.read(name, None, config.on_join, limits)
        except Exception as exc:
            relay.leave(sub.ws, {name})
            raise HistoryUnavailable(
                f"Could not read the history of room {room_label(room)!r} ({exc!r}); the socket joined the "
                "room without a replay."
            ) from exc
        if position is not None and reason is None:
            start = position.offset
        else:
            start = found.entries[0].offset - 1 if found.entries else found.head
        if reason is not None:
            await sub.send(Resync(found.epoch, start, reason))
        else:
            sub.epoch, sub.last = found.epoch, start
        await sub.replay(found.entries)
        pending = sub.pending or []
        index = 0
        while index < len(pending):
            await sub.send(pending[index])
            index += 1
        sub.pending = None
        return Replay(Position(sub.epoch, sub.last), len(found.entries), reason)

    async def _history_publish(
        self, hub: Any, room: Room | None, name: str, message: Any, frame: dict[str, Any], skip: tuple[WebSocket, ...]
    ) -> bool:
        """``broadcast`` to a room with history (group ``name``): store, deliver here in order, send to the layer."""
        config = self.history_config(room)
        if config is None:
            return False
        relay = relay_for(hub)
        kind, data = _kind(message, frame)
        skip_ids = tuple(ws.connection_id for ws in skip if ws.connection_id)
        try:
            entry = await relay.store.append(name, kind, data, skip_ids, config.limits)
        except Exception as exc:
            raise HistoryUnavailable(
                f"Broadcast to room {room_label(room)!r} was not sent: its history could not be written ({exc!r})."
            ) from exc
        log = relay.rooms.get(name)
        if log is not None:
            await log.receive(entry)
        if hub.alone_in(name):
            return True  # an in-memory layer with no other channel in the group: nobody else to tell
        try:
            await hub.layer.group_send(
                name, {"type": "ravyn.broadcast", "group": name, "origin": hub.channel, **frame, **event_fields(entry)}
            )
        except Exception as exc:
            logger.error(
                "Broadcast to %r was stored but reached this process only: the channel layer failed (%r). "
                "Other processes deliver it with their room's next message.",
                room_label(room),
                exc,
            )
        return True

    async def _history_group_send(self, layer: Any, room: Room | None, message: Any, frame: dict[str, Any]) -> bool:
        """``broadcast_sync`` to a room with history: store it, then send it through the layer with its position."""
        config = self.history_config(room)
        if config is None:
            return False
        name = self.group_name(room)
        kind, data = _kind(message, frame)
        store = open_store(layer)
        try:
            entry = await store.append(name, kind, data, (), config.limits)
        except Exception as exc:
            raise HistoryUnavailable(
                f"Broadcast to room {room_label(room)!r} was not sent: its history could not be written ({exc!r})."
            ) from exc
        finally:
            await store.aclose()
        await layer.group_send(name, {"type": "ravyn.broadcast", "group": name, **frame, **event_fields(entry)})
        return True

    # -- reading -------------------------------------------------------------------------

    async def history(
        self, room: Room | None = None, *, since: str | Position | None = None, limit: int | None = None
    ) -> HistoryPage:
        """The messages of ``room``'s history, oldest first, and the position to continue from.

        Without ``since``: the ``limit`` newest (default: all kept); ``page.position``
        is the room's head, so ``connect(..., since=page.position)`` after rendering
        them misses nothing and repeats nothing. With ``since``: the messages
        after it (at most ``limit``, the oldest first); ``page.position`` is the
        last one returned. A ``since`` that cannot be continued (malformed, another
        epoch or room, in the future, older than the history) gives the newest
        messages with ``page.resync`` set to the reason.
        """
        hub = await self._hub()
        return await self._read_history(relay_for(hub).store, room, since, limit)

    def history_sync(
        self, room: Room | None = None, *, since: str | Position | None = None, limit: int | None = None
    ) -> HistoryPage:
        """``history`` for sync code (views rendering the last messages)."""

        async def read() -> HistoryPage:
            layer = get_channel_layer(self._layer_alias or get_settings().CHANNEL_LAYER)
            store = open_store(layer)
            try:
                return await self._read_history(store, room, since, limit)
            finally:
                await store.aclose()

        page: HistoryPage = async_to_sync(read)()
        return page

    async def _read_history(
        self, store: Any, room: Room | None, since: str | Position | None, limit: int | None
    ) -> HistoryPage:
        config = self._require_history(room, "history()")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"history(limit={limit!r}): give a whole number >= 0, or None for all.")
        name = self.group_name(room)
        limits = config.limits
        reason: str | None = None
        position: Position | None = None
        if since is not None and since != "":
            try:
                position = Position.parse(since)
            except ValueError:
                reason = "malformed"
        try:
            if position is not None:
                found = await store.read(name, position.offset, limit, limits)
                if found.epoch != position.epoch:
                    reason = "epoch"
                elif position.offset > found.head:
                    reason = "future"
                elif position.offset < found.first - 1:
                    reason = "expired"
                else:
                    last = found.entries[-1].offset if found.entries else position.offset
                    head = Position(found.epoch, found.head)
                    return HistoryPage(_messages(found), Position(found.epoch, last), head)
            found = await store.read(name, None, limit, limits)
        except Exception as exc:
            raise HistoryUnavailable(f"Could not read the history of room {room_label(room)!r} ({exc!r}).") from exc
        head = Position(found.epoch, found.head)
        return HistoryPage(_messages(found), head, head, reason)
