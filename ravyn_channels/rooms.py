"""Rooms and the Channels groups that carry them.

A room belongs to a ``ConnectionManager``: its identity is the manager's name
plus the room's name, so two managers' rooms called ``"staff"`` never meet,
while managers of the same name in other processes share them (that is how a
broadcast reaches the whole cluster). Every name below is ASCII, under 100
characters and the same in every process.

==================================  ===============================================================
``group_name(room, manager=M)``     ``ravyn.r.<slug of M>.<slug of room>.<digest>``: the room's group;
                                    it carries ``ravyn.broadcast`` events only
``ChannelsGroup("notifications")``  a Channels group used exactly as named, shared with hand-written
                                    consumers (an explicit choice; carries ``ravyn.broadcast`` only)
``manager_group(M)``                ``ravyn.all.<digest>``: everyone connected through manager ``M``
``private_group(G)``                ``ravyn.p.<digest>``: the internal events of group ``G``
                                    (``ravyn.presence``, ``ravyn.user``); only process channels join it
==================================  ===============================================================
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["ChannelsGroup", "Room", "group_name", "manager_group", "private_group", "room_label"]

#: What Channels accepts as a group name (with a length under 100).
_VALID_GROUP = re.compile(r"^[a-zA-Z\d\-_.]+$")
_SLUG_JUNK = re.compile(r"[^a-zA-Z\d\-_]+")
#: Group names starting with this belong to ravyn_channels.
RESERVED_PREFIX = "ravyn."
PRIVATE_PREFIX = "ravyn.p."


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _slug(text: str, size: int) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return _SLUG_JUNK.sub("-", ascii_text).strip("-")[:size].strip("-") or "_"


@dataclass(frozen=True)
class ChannelsGroup:
    """A Channels group used exactly as named: the explicit way to share a room with plain consumers.

    ``await manager.connect(websocket, group=ChannelsGroup("notifications"))``
    joins the group ``"notifications"`` that hand-written consumers
    (``groups = ["notifications"]``) are in: broadcasts go both ways (the
    consumers need ``BroadcastMixin``), presence and other internal events
    never reach them. Every manager that names the same ``ChannelsGroup``
    shares it. ``name`` must be a valid Channels group name (ASCII letters,
    digits, ``-_.``, under 100 characters) outside ravyn_channels' own
    ``ravyn.`` namespace.
    """

    name: str

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str):
            raise TypeError(f"ChannelsGroup takes a group name (str), got {type(name).__name__}: {name!r}.")
        if not (0 < len(name) < 100 and _VALID_GROUP.match(name)):
            raise ValueError(
                f"ChannelsGroup({name!r}): a Channels group name is 1-99 ASCII letters, digits, '-', '_' or '.'. "
                "Use the exact name your consumers pass to group_add(); for any other room name, "
                "pass the str itself (manager.connect(ws, group=room)): the manager maps it for you."
            )
        if name.startswith(RESERVED_PREFIX):
            raise ValueError(
                f"ChannelsGroup({name!r}): names starting with 'ravyn.' are ravyn_channels' own groups. "
                "To reach a manager's room from Channels code use manager.group_name(room)."
            )

    def __str__(self) -> str:
        return self.name


#: A room: any ``str`` (the manager's own, isolated) or a ``ChannelsGroup`` (shared, explicit).
Room: TypeAlias = str | ChannelsGroup


def group_name(room: str | ChannelsGroup, manager: str | None = None) -> str:
    """The Channels group of ``room`` in the manager named ``manager`` (``manager.group_name(room)``).

    Any ``str`` is a room name (unicode, spaces, any length); the group is
    ``ravyn.r.<manager slug>.<room slug>.<digest of both>``, distinct per
    manager and per room, and the same in every process. A ``ChannelsGroup``
    is its own name, whatever the manager.
    """
    if isinstance(room, ChannelsGroup):
        return room.name
    if not isinstance(room, str):
        raise TypeError(f"Room names are str (or ChannelsGroup), got {type(room).__name__}: {room!r}.")
    if not isinstance(manager, str):
        raise TypeError(
            f"group_name({room!r}) needs the manager the room belongs to: rooms of different managers are "
            "distinct groups. Call manager.group_name(room), or group_name(room, manager='chat.sockets') "
            "with the manager's name (by default the module that creates it)."
        )
    digest = _digest(f"{len(manager)}:{manager}:{room}")
    return f"ravyn.r.{_slug(manager, 24)}.{_slug(room, 30)}.{digest}"


def manager_group(manager: str) -> str:
    """The group of everyone connected through the manager named ``manager``."""
    return f"ravyn.all.{_digest('manager:' + manager)}"


def private_group(group: str) -> str:
    """The group that carries ``group``'s internal events; only process channels are in it."""
    return f"{PRIVATE_PREFIX}{_digest('private:' + group)}"


def room_label(room: str | ChannelsGroup | None) -> str | None:
    """The room's name as shown to clients (``room`` in presence frames)."""
    return room.name if isinstance(room, ChannelsGroup) else room
