"""Presence: who is in a room, on every process, kept right when processes crash.

``ConnectionManager(presence=True)`` records each connection, for every room
it joins, in a store all processes share (``store``: Redis for channels-redis,
memory for the in-memory layer); a ``Tracker`` per process (``tracker``) keeps
its members alive with heartbeats and turns changes into ordered events. This
module holds the public types and the manager's read methods (``PresenceMixin``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils.crypto import salted_hmac

from ..conf import get_settings
from ..rooms import Room
from .store import Info, PresenceBackend, open_backend

if TYPE_CHECKING:
    from ..websocket import WebSocket

__all__ = [
    "PRESENCE",
    "Member",
    "OnlineUser",
    "PresenceCallback",
    "PresenceMixin",
    "identify",
    "member_id",
    "public_members",
    "timings",
    "user_key",
]

#: The channel-layer event type of a presence change.
PRESENCE = "ravyn.presence"

#: Receives ``presence_state`` and ``presence_diff`` dicts instead of JSON frames.
PresenceCallback = Callable[[dict[str, Any]], Awaitable[None]]

_T = TypeVar("_T")


def timings(ttl: float) -> tuple[float, float]:
    """``(member lifetime, heartbeat interval)`` for ``PRESENCE_TTL``: 3/4 and 1/4 of it.

    A crashed process's members leave ``count``/``members`` at most 3/4·TTL after
    its last heartbeat, and another process's next heartbeat (1/4·TTL later at
    most) announces the leave: both within TTL. A live process may miss two
    heartbeats in a row before its members expire.
    """
    if not isinstance(ttl, (int, float)) or ttl <= 0:
        raise ValueError(f"PRESENCE_TTL must be a positive number of seconds, got {ttl!r}.")
    return ttl * 0.75, ttl / 4


@dataclass(frozen=True)
class Member:
    """One connection present in a room."""

    connection_id: str
    #: ``str(pk)`` of the logged-in Django user; ``None`` for anonymous connections.
    user_id: str | None
    #: ``user.get_username()``; ``None`` for anonymous connections.
    username: str | None
    #: Unix time (seconds) when the connection joined the room.
    joined_at: float
    #: The JSON data given to ``connect(..., meta=...)``.
    meta: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def public_id(self) -> str:
        """The opaque id presence frames give this connection (``member_id``)."""
        return member_id(self.connection_id)

    @classmethod
    def from_info(cls, connection_id: str, info: Info) -> Member:
        meta = info.get("meta")
        return cls(
            connection_id,
            info.get("user_id"),
            info.get("username"),
            float(info.get("joined_at") or 0.0),
            meta if isinstance(meta, dict) else {},
        )


@dataclass(frozen=True)
class OnlineUser:
    """A logged-in user present in a room, with their connections there."""

    user_id: str
    username: str
    connection_ids: tuple[str, ...]


def identify(user: Any) -> tuple[str | None, str | None]:
    """``(user_id, username)`` of a scope's user; ``(None, None)`` when anonymous."""
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    pk = getattr(user, "pk", None)
    if pk is None:
        return None, None
    get_username = getattr(user, "get_username", None)
    return str(pk), str(get_username() if callable(get_username) else user)


def user_key(user: Any) -> str:
    """The user id ``send_to_user`` looks for: a user object's ``pk``, or a ``pk`` given as is."""
    if isinstance(user, bool) or user is None:
        raise TypeError(f"send_to_user() needs a user or a user's pk, got {user!r}.")
    if isinstance(user, (int, str)) or type(user).__name__ == "UUID":
        return str(user)
    pk = getattr(user, "pk", None)
    if pk is None:
        raise TypeError(
            f"send_to_user() needs a logged-in user or a user's pk, got {user!r} (no pk: anonymous users "
            "have no connections to find; send to a connection_id with send_personal_message)."
        )
    return str(pk)


def member_id(connection_id: str) -> str:
    """The id a connection has in presence frames sent to clients: opaque and stable.

    An HMAC of the connection id keyed with ``SECRET_KEY`` (every process
    computes the same): it reveals neither the server's channel names nor
    anything else of the connection. Tell a client its own id to let it find
    itself in the member list.
    """
    return salted_hmac("ravyn_channels.presence.member", connection_id, algorithm="sha256").hexdigest()[:20]


def public_members(members: dict[str, Info]) -> dict[str, dict[str, Any]]:
    """Members as presence frames show them to clients: ``{member_id: {"meta": meta}}``.

    Only the ``meta`` the application gave to ``connect`` is published, so the
    application decides what each visitor may see; user ids, usernames and
    connection ids stay on the server (``members()``, callbacks).
    """
    return {
        str(info.get("id") or member_id(cid)): {"meta": info.get("meta") if isinstance(info.get("meta"), dict) else {}}
        for cid, info in members.items()
    }


def presence_info(ws: WebSocket, meta: dict[str, Any] | None) -> Info:
    """What the store keeps about a connection in one room."""
    user_id, username = identify(ws.scope.get("user"))
    return {
        "user_id": user_id,
        "username": username,
        "joined_at": round(time.time(), 3),
        "meta": meta or {},
        "id": member_id(ws.connection_id or ""),
    }


class PresenceMixin:
    """``ConnectionManager``'s presence reads: ``count``, ``members``, ``users`` and their sync variants."""

    name: str
    presence: bool
    _layer_alias: str | None

    def group_name(self, room: Room | None = None) -> str:
        raise NotImplementedError

    def _current_hub(self) -> Any:
        raise NotImplementedError

    async def count(self, room: Room | None = None) -> int:
        """How many connections are in ``room`` (``None``: in this manager), on every process."""
        name = self.group_name(room)
        return await self._read_presence(lambda store: store.count(name))

    async def members(self, room: Room | None = None) -> list[Member]:
        """The connections in ``room`` (``None``: in this manager), on every process, oldest first."""
        name = self.group_name(room)
        _, found = await self._read_presence(lambda store: store.state(name))
        return sorted(
            (Member.from_info(cid, info) for cid, info in found.items()), key=lambda m: (m.joined_at, m.connection_id)
        )

    async def users(self, room: Room | None = None) -> list[OnlineUser]:
        """The distinct logged-in users in ``room`` (anonymous connections are not users), by username."""
        by_user: dict[str, tuple[str, list[str]]] = {}
        for member in await self.members(room):
            if member.user_id is not None:
                entry = by_user.setdefault(member.user_id, (member.username or "", []))
                entry[1].append(member.connection_id)
        return sorted(
            (OnlineUser(uid, name, tuple(ids)) for uid, (name, ids) in by_user.items()),
            key=lambda u: (u.username, u.user_id),
        )

    def count_sync(self, room: Room | None = None) -> int:
        """``count`` for sync code (views, management commands)."""
        return async_to_sync(self.count)(room)

    def members_sync(self, room: Room | None = None) -> list[Member]:
        """``members`` for sync code."""
        return async_to_sync(self.members)(room)

    def users_sync(self, room: Room | None = None) -> list[OnlineUser]:
        """``users`` for sync code."""
        return async_to_sync(self.users)(room)

    def _require_presence(self, what: str) -> None:
        if not self.presence:
            raise RuntimeError(
                f"{what} needs presence: create the manager with ConnectionManager({self.name!r}, presence=True) "
                "(the same name and flag where sockets connect and where you read)."
            )

    async def _read_presence(self, read: Callable[[PresenceBackend], Awaitable[_T]]) -> _T:
        """Read through this process's tracker if it has one, else through a store opened for this read."""
        self._require_presence("count(), members() and users()")
        hub = self._current_hub()
        if hub is not None and hub.presence is not None:
            return await read(hub.presence.backend)
        layer = get_channel_layer(self._layer_alias or get_settings().CHANNEL_LAYER)
        if layer is None:
            raise RuntimeError("Presence needs a channel layer: CHANNEL_LAYERS has none for this manager.")
        store = open_backend(layer, timings(get_settings().PRESENCE_TTL)[0])
        try:
            return await read(store)
        finally:
            await store.aclose()
