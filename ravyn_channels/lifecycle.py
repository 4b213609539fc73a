"""Room lifecycle hooks: run code when a room gets its first member or loses its last, cluster-wide, once.

``manager.on_first_join`` / ``manager.on_last_leave`` register async callables
taking the room's name. A room is occupied while at least one process has a
member in it. Each process records, in a shared store, whether it has members
(a Redis hash per room: process channel -> 1) when its local membership starts or
ends; the store answers, atomically, whether that change took the whole cluster
from empty to occupied (or back), and only that process runs the hook. So each
transition runs the hook once, on one process.

A process that dies without leaving (SIGKILL) stops renewing its liveness key
(every ``PRESENCE_TTL``/4, lifetime 3/4 of it); the other processes sweep the
rooms once per ``PRESENCE_TTL``/4 and remove the dead process's entries in the
same atomic step: the one sweep that empties a room runs its ``on_last_leave``.
With the in-memory layer (one process) the store is this process's memory.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from .conf import get_settings
from .presence import timings

__all__ = ["RoomCallback", "RoomHooks"]

logger = logging.getLogger("ravyn_channels")

RoomCallback = Callable[[Any], Awaitable[None]]

_JOIN = """
local before = 0
for _, v in ipairs(redis.call('HVALS', KEYS[1])) do before = before + tonumber(v) end
redis.call('HSET', KEYS[1], ARGV[1], 1)
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if before == 0 then return 1 end
return 0
"""

_LEAVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return 1
end
return 0
"""

_SWEEP = """
local removed = 0
for _, proc in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', ARGV[2] .. proc) == 0 then
    redis.call('HDEL', KEYS[1], proc)
    removed = removed + 1
  end
end
if redis.call('HLEN', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  local label = redis.call('HGET', KEYS[3], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
  if removed > 0 and label then return label end
end
return false
"""


class _MemoryStore:
    """One process: the rooms' occupying processes in memory."""

    def __init__(self) -> None:
        self.rooms: dict[str, set[str]] = {}

    async def join(self, group: str, proc: str, label: str) -> bool:
        procs = self.rooms.setdefault(group, set())
        first = not procs
        procs.add(proc)
        return first

    async def leave(self, group: str, proc: str) -> bool:
        procs = self.rooms.get(group)
        if procs is None or proc not in procs:
            return False
        procs.discard(proc)
        if not procs:
            del self.rooms[group]
            return True
        return False

    async def beat(self, proc: str, lifetime: float) -> bool:
        return True

    async def sweep(self) -> list[str]:
        return []


class _RedisStore:
    """The rooms' occupying processes in the channel layer's first Redis host."""

    def __init__(self, host: Any, prefix: str):
        from channels_redis.utils import create_pool
        from redis import asyncio as aioredis

        self.prefix = f"{prefix}:rooms:"
        self.client = aioredis.Redis(connection_pool=create_pool(dict(host)))
        self._join = self.client.register_script(_JOIN)
        self._leave = self.client.register_script(_LEAVE)
        self._sweep = self.client.register_script(_SWEEP)

    def _keys(self, group: str) -> list[str]:
        return [f"{self.prefix}procs:{group}", f"{self.prefix}index", f"{self.prefix}labels"]

    async def join(self, group: str, proc: str, label: str) -> bool:
        return bool(await self._join(keys=self._keys(group), args=[proc, group, label]))

    async def leave(self, group: str, proc: str) -> bool:
        return bool(await self._leave(keys=self._keys(group), args=[proc, group]))

    async def beat(self, proc: str, lifetime: float) -> bool:
        """Renew this process's liveness; ``False`` if it had expired (its rooms may have been swept)."""
        before = await self.client.set(f"{self.prefix}alive:{proc}", 1, px=max(1, round(lifetime * 1000)), get=True)
        return before is not None

    async def sweep(self) -> list[str]:
        """Remove dead processes from every room; the labels of the rooms this emptied."""
        emptied = []
        for raw in await self.client.smembers(f"{self.prefix}index"):
            group = raw.decode() if isinstance(raw, bytes) else str(raw)
            label = await self._sweep(keys=self._keys(group), args=[group, f"{self.prefix}alive:"])
            if label:
                emptied.append(label.decode() if isinstance(label, bytes) else str(label))
        return emptied


def _open_store(layer: Any) -> _MemoryStore | _RedisStore:
    from channels_redis.core import RedisChannelLayer

    if isinstance(layer, RedisChannelLayer) and layer.hosts:
        return _RedisStore(layer.hosts[0], str(layer.prefix))
    return _MemoryStore()


class _Process:
    """This process's side on one hub: the store, the groups it occupies, the liveness and sweep loop."""

    def __init__(self, hub: Any):
        self.hub = hub
        self.store = _open_store(hub.layer)
        self.occupied: dict[str, str] = {}  # group -> label (JSON: [manager, room])
        self.locks: dict[str, asyncio.Lock] = {}
        self.started = False
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        await self.store.beat(self.hub.channel, timings(get_settings().PRESENCE_TTL)[0])
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while True:
            lifetime, interval = timings(get_settings().PRESENCE_TTL)
            await asyncio.sleep(interval)
            try:
                if not await self.store.beat(self.hub.channel, lifetime):
                    # Our liveness had expired: other processes may have swept our rooms. Claim them again.
                    for group, label in list(self.occupied.items()):
                        if await self.store.join(group, self.hub.channel, label):
                            _run(label, "first")
                for label in await self.store.sweep():
                    _run(label, "last")
            except Exception as exc:
                logger.warning("Room lifecycle: the store failed (%r); will retry", exc)

    async def sync(self, group: str, label: str) -> None:
        """Record whether this process has members of ``group``; run a hook if the cluster changed."""
        await self.start()
        lock = self.locks.setdefault(group, asyncio.Lock())
        async with lock:
            want = bool(self.hub.members.get(group))
            if want and group not in self.occupied:
                self.occupied[group] = label
                if await self.store.join(group, self.hub.channel, label):
                    _run(label, "first")
            elif not want and group in self.occupied:
                del self.occupied[group]
                if await self.store.leave(group, self.hub.channel):
                    _run(label, "last")
        if not lock.locked() and group not in self.occupied:
            self.locks.pop(group, None)


_processes: weakref.WeakKeyDictionary[Any, _Process] = weakref.WeakKeyDictionary()
_hooks: dict[str, RoomHooks] = {}
_running: set[asyncio.Future[None]] = set()


def _run(label: str, which: str) -> None:
    """Run the hooks of the room ``label`` (``[manager, room]``) in a task; failures are logged."""
    try:
        manager, room = json.loads(label)
    except ValueError:
        return
    hooks = _hooks.get(manager)
    callbacks = [] if hooks is None else hooks.first if which == "first" else hooks.last
    for callback in callbacks:
        task = asyncio.ensure_future(_call(callback, room, which))
        _running.add(task)
        task.add_done_callback(_running.discard)


async def _call(callback: RoomCallback, room: Any, which: str) -> None:
    try:
        await callback(room)
    except Exception:
        logger.exception("Room %s hook %s(%r) raised", "first-join" if which == "first" else "last-leave",
                         getattr(callback, "__qualname__", callback), room)


class RoomHooks:
    """The lifecycle hooks of one manager's rooms."""

    def __init__(self, manager: str):
        self.manager = manager
        self.first: list[RoomCallback] = []
        self.last: list[RoomCallback] = []
        _hooks[manager] = self

    async def sync(self, hub: Any, group: str, room: Any) -> None:
        """After this process's membership of ``group`` (the room ``room``) changed."""
        process = _processes.get(hub)
        if process is None:
            process = _processes[hub] = _Process(hub)
        try:
            await process.sync(group, json.dumps([self.manager, room]))
        except Exception as exc:
            logger.warning("Room lifecycle: could not record room %r (%r)", room, exc)
