"""Where history lives: the storage contract, the in-memory store, and how one is chosen.

A store keeps, per Channels group, a bounded log of broadcasts. Every entry has
an *offset*: 1, 2, 3… per group, assigned atomically by the store, so the
store's order is the room's one order. The log also has an *epoch*, a random
token created with it: when the log is lost (Redis restarted without its data,
or the room stayed idle until its keys expired) the next write or read creates
a new epoch and offsets start again from 1, so an old position can never be
mistaken for a new one. The Redis store (``redis_store``) is shared by every
process on the channel layer's Redis; the in-memory store serves the single
process of an ``InMemoryChannelLayer``.
"""

from __future__ import annotations

import abc
import secrets
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ..presence.store import redis_location

__all__ = ["Entry", "HistoryBackend", "Limits", "MemoryHistory", "Slice", "new_epoch", "open_store"]


def new_epoch() -> str:
    """A fresh epoch token: 16 hex digits."""
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Limits:
    """A room's retention: at most ``max_messages`` entries, none older than ``max_age`` seconds.

    ``max_age=None``: no age bound.
    """

    max_messages: int
    max_age: float | None


@dataclass(frozen=True)
class Entry:
    """One broadcast as stored: ``kind`` is ``"text"``, ``"json"`` (``data`` is JSON text) or ``"bytes"``.

    ``time`` is the store's clock (Unix seconds) when it was added; ``skip`` the
    connection ids the broadcast excluded.
    """

    epoch: str
    offset: int
    time: float
    kind: str
    data: str | bytes
    skip: tuple[str, ...] = ()


@dataclass
class Slice:
    """What a read found: the log's ``epoch``, its ``head`` (last offset assigned, 0 when none),
    ``first`` (oldest offset still kept; ``head + 1`` when nothing is kept) and the entries asked for."""

    epoch: str
    head: int
    first: int
    entries: list[Entry] = field(default_factory=list)


class HistoryBackend(abc.ABC):
    """Storage for room history, shared by every process that can see the same rooms."""

    @abc.abstractmethod
    async def append(self, group: str, kind: str, data: str | bytes, skip: tuple[str, ...], limits: Limits) -> Entry:
        """Add one entry to ``group``'s log (creating the log, and its epoch, if missing) and trim it."""

    @abc.abstractmethod
    async def read(self, group: str, after: int | None, limit: int | None, limits: Limits) -> Slice:
        """Read ``group``'s log (creating it if missing).

        ``after`` given: the entries with a larger offset, oldest first, at most
        ``limit`` of them (``None``: all). ``after=None``: the ``limit`` newest
        entries (``None``: all; 0: none, just the epoch and bounds), oldest first.
        """

    async def aclose(self) -> None:
        """Release connections (the store itself stays)."""
        return None


class _Log:
    __slots__ = ("entries", "epoch", "seq", "touched")

    def __init__(self, maxlen: int) -> None:
        self.epoch = new_epoch()
        self.seq = 0
        self.entries: deque[Entry] = deque(maxlen=maxlen)
        self.touched = time.time()


class MemoryHistory(HistoryBackend):
    """One process's history, for the in-memory channel layer (safe to use from other threads).

    As in Redis, a log idle for longer than its ``max_age`` is dropped (its
    next use starts a new epoch), so rooms do not pile up.
    """

    #: Appends between sweeps of idle logs.
    SWEEP_EVERY = 1000

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}
        self._ages: dict[str, float] = {}
        self._lock = threading.Lock()
        self._appends = 0

    def _log(self, group: str, limits: Limits, now: float) -> _Log:
        log = self._logs.get(group)
        if log is not None and limits.max_age is not None and now - log.touched > limits.max_age:
            log = None
        if log is None:
            log = self._logs[group] = _Log(limits.max_messages)
        elif log.entries.maxlen != limits.max_messages:
            log.entries = deque(log.entries, maxlen=limits.max_messages)
        if limits.max_age is not None:
            self._ages[group] = limits.max_age
            cutoff = now - limits.max_age
            while log.entries and log.entries[0].time < cutoff:
                log.entries.popleft()
        return log

    def _sweep(self, now: float) -> None:
        for group, age in list(self._ages.items()):
            log = self._logs.get(group)
            if log is None or now - log.touched > age:
                self._logs.pop(group, None)
                self._ages.pop(group, None)

    async def append(self, group: str, kind: str, data: str | bytes, skip: tuple[str, ...], limits: Limits) -> Entry:
        now = time.time()
        with self._lock:
            log = self._log(group, limits, now)
            log.seq += 1
            log.touched = now
            entry = Entry(log.epoch, log.seq, now, kind, data, skip)
            log.entries.append(entry)
            self._appends += 1
            if self._appends % self.SWEEP_EVERY == 0:
                self._sweep(now)
        return entry

    async def read(self, group: str, after: int | None, limit: int | None, limits: Limits) -> Slice:
        now = time.time()
        with self._lock:
            log = self._log(group, limits, now)
            entries = log.entries
            count = len(entries)
            first = entries[0].offset if entries else log.seq + 1
            # Offsets in a log are consecutive: the entries after ``after`` start at a known index.
            if after is None:
                start = 0 if limit is None else max(0, count - limit) if limit > 0 else count
                stop = count
            else:
                start = min(count, max(0, after + 1 - first))
                stop = count if limit is None else min(count, start + limit)
            return Slice(log.epoch, log.seq, first, list(islice(entries, start, stop)))


_memory: weakref.WeakKeyDictionary[Any, MemoryHistory] = weakref.WeakKeyDictionary()
_memory_lock = threading.Lock()


def open_store(layer: Any) -> HistoryBackend:
    """The history store that matches ``layer``: Redis for channels-redis, memory for the in-memory layer.

    A Redis store opens its own connections (the layer's hosts and settings,
    as presence does): close it with ``aclose()`` when done.
    """
    from channels.layers import InMemoryChannelLayer

    if isinstance(layer, InMemoryChannelLayer):
        with _memory_lock:
            store = _memory.get(layer)
            if store is None:
                store = _memory[layer] = MemoryHistory()
        return store
    hosts, prefix = redis_location(layer, "History", "create the manager without history=...")
    from .redis_store import RedisHistory

    return RedisHistory(hosts, prefix)
