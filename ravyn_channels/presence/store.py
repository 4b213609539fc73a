"""Where presence lives: the storage contract, the in-memory store, and how one is chosen.

A store holds, per Channels group, the members present (connection id -> info,
a JSON-ready dict) and a sequence number that grows by one with every change,
so that processes can put the changes of a room in order. The Redis store
(``redis_store``) is shared by every process on the channel layer's Redis
and forgets members whose process stopped heartbeating; the in-memory store
serves the single process of an ``InMemoryChannelLayer``.
"""

from __future__ import annotations

import abc
import threading
import time
import weakref
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Beat", "Change", "MemoryPresence", "PresenceBackend", "open_backend", "redis_location"]

Info = dict[str, Any]


@dataclass
class Change:
    """The outcome of a join or leave in one group: ``seq`` is 0 when nothing changed."""

    seq: int = 0
    members: dict[str, Info] = field(default_factory=dict)


@dataclass
class Beat:
    """One group's heartbeat: members it found expired (a leave, numbered ``seq``),
    this process's members the store had lost (to join again), and the group's current sequence."""

    seq: int = 0
    left: dict[str, Info] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    current: int = 0


class PresenceBackend(abc.ABC):
    """Storage for presence, shared by every process that can see the same rooms.

    Every method takes Channels group names. ``join`` and ``leave`` report only
    what they changed, so that each change is announced by exactly one process.
    """

    #: True when members vanish unless their process calls ``beat`` (a shared store).
    expires = False

    @abc.abstractmethod
    async def join(self, changes: Mapping[str, Mapping[str, Info]]) -> dict[str, Change]:
        """Add members (group -> connection id -> info); returns the ones that were new."""

    @abc.abstractmethod
    async def leave(self, changes: Mapping[str, Collection[str]]) -> dict[str, Change]:
        """Remove members (group -> connection ids); returns the ones that were present, with their info."""

    async def beat(self, local: Mapping[str, Collection[str]]) -> dict[str, Beat]:
        """Keep this process's members (group -> connection ids) alive and remove expired ones."""
        return {}

    @abc.abstractmethod
    async def state(self, group: str) -> tuple[int, dict[str, Info]]:
        """The group's sequence number and its present members."""

    @abc.abstractmethod
    async def count(self, group: str) -> int:
        """How many members the group has."""

    @abc.abstractmethod
    async def groups(self) -> dict[str, int]:
        """Every group with members, and its member count."""

    async def aclose(self) -> None:
        """Release connections (the store itself stays)."""
        return None


class MemoryPresence(PresenceBackend):
    """One process's presence, for the in-memory channel layer (safe to read from other threads)."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, Info]] = {}
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()

    def _next(self, group: str) -> int:
        # As in Redis: a group that empties forgets its counter, and a new one starts
        # from the time in microseconds, so the numbers of a group only ever grow.
        seq = self._seq[group] = self._seq.get(group, time.time_ns() // 1000) + 1
        return seq

    async def join(self, changes: Mapping[str, Mapping[str, Info]]) -> dict[str, Change]:
        out: dict[str, Change] = {}
        with self._lock:
            for group, members in changes.items():
                present = self._groups.setdefault(group, {})
                new = {cid: info for cid, info in members.items() if cid not in present}
                present.update(members)
                out[group] = Change(self._next(group), new) if new else Change()
        return out

    async def leave(self, changes: Mapping[str, Collection[str]]) -> dict[str, Change]:
        out: dict[str, Change] = {}
        with self._lock:
            for group, cids in changes.items():
                present = self._groups.get(group, {})
                left = {cid: present.pop(cid) for cid in cids if cid in present}
                out[group] = Change(self._next(group), left) if left else Change()
                if not present:
                    self._groups.pop(group, None)
                    self._seq.pop(group, None)
        return out

    async def state(self, group: str) -> tuple[int, dict[str, Info]]:
        with self._lock:
            return self._seq.get(group, 0), dict(self._groups.get(group, {}))

    async def count(self, group: str) -> int:
        with self._lock:
            return len(self._groups.get(group, ()))

    async def groups(self) -> dict[str, int]:
        with self._lock:
            return {group: len(members) for group, members in self._groups.items()}


_memory: weakref.WeakKeyDictionary[Any, MemoryPresence] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def open_backend(layer: Any, lifetime: float) -> PresenceBackend:
    """The presence store that matches ``layer``: Redis for channels-redis, memory for the in-memory layer.

    ``lifetime`` is how long (seconds) a member stays without a heartbeat. A Redis
    store opens its own connections: close it with ``aclose()`` when done.
    """
    from channels.layers import InMemoryChannelLayer

    if isinstance(layer, InMemoryChannelLayer):
        with _memory_lock:
            store = _memory.get(layer)
            if store is None:
                store = _memory[layer] = MemoryPresence()
        return store
    hosts, prefix = redis_location(layer, "Presence", "create the manager without presence=True")
    from .redis_store import RedisPresence

    return RedisPresence(hosts, prefix, lifetime)


def redis_location(layer: Any, feature: str, otherwise: str) -> tuple[list[dict[str, Any]], str]:
    """The Redis ``hosts`` and key ``prefix`` of a channels-redis ``layer`` (for stores beside it).

    ``feature`` and ``otherwise`` name, in the error for any other layer, what
    needs Redis and how to do without it.
    """
    from channels_redis.core import RedisChannelLayer
    from channels_redis.pubsub import RedisPubSubChannelLayer
    from channels_redis.utils import decode_hosts

    kind = type(layer)
    if isinstance(layer, RedisChannelLayer):
        return list(layer.hosts), str(layer.prefix)
    if isinstance(layer, RedisPubSubChannelLayer):
        kwargs = dict(layer._kwargs)
        if layer._args:
            kwargs.setdefault("hosts", layer._args[0])
        return decode_hosts(kwargs.get("hosts")), str(kwargs.get("prefix", "asgi"))
    raise RuntimeError(
        f"{feature} needs a channels-redis layer (many processes) or InMemoryChannelLayer (one "
        f"process); CHANNEL_LAYERS has {kind.__module__}.{kind.__qualname__}. Use "
        f"ravyn_channels.layers.redis_channel_layer(url) or {otherwise}."
    )
