"""Presence in the channel layer's Redis: shared by every process, forgetting the dead.

Keys, for a Channels group ``G`` under the layer's ``prefix`` (default ``asgi``):

``{prefix}:presence:G``       ZSET   connection id -> expiry (Redis server time, ms)
``{prefix}:presence:G:info``  HASH   connection id -> JSON ``{"user_id", "username", "joined_at", "meta"}``
``{prefix}:presence:G:seq``   STRING the group's change counter (``INCR`` once per join, leave or sweep)

Each process heartbeats its own members (one script call per Redis host per
beat): the call first removes members whose expiry has passed (their process
stopped heartbeating: it crashed or lost Redis) and returns them, then pushes
the expiry of this process's members forward, and reports those the store no
longer has. All three keys carry a key expiry as long as the members' lifetime,
renewed by every write, and are deleted when the last member leaves: nothing
outlives the processes that use it. Each script is atomic, and time is Redis's
own clock, so processes need not agree on the time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from channels_redis.utils import _consistent_hash, create_pool
from redis import asyncio as aioredis

from .store import Beat, Change, Info, PresenceBackend

__all__ = ["RedisPresence", "redis_clients"]

#: Expired members one heartbeat removes per group (the rest go at the next beat;
#: ``count`` ignores them already).
SWEEP_BATCH = 1000
#: Groups one script call handles (a heartbeat over more rooms takes several calls).
GROUPS_PER_CALL = 100

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local life = tonumber(ARGV[1])
-- A group that empties loses its counter; a new one starts from the time in
-- microseconds, so numbers keep growing for anyone still holding an old one.
local function nextseq(key)
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, t[1] .. string.format('%06d', tonumber(t[2])))
  end
  return redis.call('INCR', key)
end
local function settle(z, h, s)
  if redis.call('EXISTS', z) == 0 then
    redis.call('DEL', h, s)
    return
  end
  for _, key in ipairs({z, h, s}) do
    if redis.call('PTTL', key) < life then redis.call('PEXPIRE', key, life) end
  end
end
local function drop(z, h, cid, out)
  redis.call('ZREM', z, cid)
  out[#out + 1] = cid
  out[#out + 1] = redis.call('HGET', h, cid) or '{}'
  redis.call('HDEL', h, cid)
end
"""

# KEYS: (zset, hash, seq) per group; ARGV: life, then per group: n, n x (cid, info).
_JOIN = (
    _PRELUDE
    + """
local out, pos = {}, 2
for g = 1, #KEYS, 3 do
  local z, h, s = KEYS[g], KEYS[g + 1], KEYS[g + 2]
  local n = tonumber(ARGV[pos])
  pos = pos + 1
  local added = {}
  for _ = 1, n do
    local cid, info = ARGV[pos], ARGV[pos + 1]
    pos = pos + 2
    if redis.call('ZADD', z, now + life, cid) == 1 then
      redis.call('HSET', h, cid, info)
      added[#added + 1] = cid
      added[#added + 1] = info
    end
  end
  local seq = 0
  if #added > 0 then seq = nextseq(s) end
  settle(z, h, s)
  out[#out + 1] = seq
  out[#out + 1] = added
end
return out
"""
)

# KEYS: (zset, hash, seq) per group; ARGV: life, then per group: n, n x cid.
_LEAVE = (
    _PRELUDE
    + """
local out, pos = {}, 2
for g = 1, #KEYS, 3 do
  local z, h, s = KEYS[g], KEYS[g + 1], KEYS[g + 2]
  local n = tonumber(ARGV[pos])
  pos = pos + 1
  local left = {}
  for _ = 1, n do
    local cid = ARGV[pos]
    pos = pos + 1
    if redis.call('ZSCORE', z, cid) then drop(z, h, cid, left) else redis.call('HDEL', h, cid) end
  end
  local seq = 0
  if #left > 0 then seq = nextseq(s) end
  settle(z, h, s)
  out[#out + 1] = seq
  out[#out + 1] = left
end
return out
"""
)

# KEYS: (zset, hash, seq) per group; ARGV: life, batch, then per group: n, n x cid (this process's).
_BEAT = (
    _PRELUDE
    + """
local out, pos = {}, 3
for g = 1, #KEYS, 3 do
  local z, h, s = KEYS[g], KEYS[g + 1], KEYS[g + 2]
  local left = {}
  for _, cid in ipairs(redis.call('ZRANGEBYSCORE', z, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))) do
    drop(z, h, cid, left)
  end
  local seq = 0
  if #left > 0 then seq = nextseq(s) end
  local n = tonumber(ARGV[pos])
  local first, last = pos + 1, pos + n
  pos = last + 1
  -- Push every member's expiry forward in batches; when fewer changed than were
  -- sent, find the ones the store no longer has.
  local changed, batch = 0, {}
  for i = first, last do
    batch[#batch + 1] = now + life
    batch[#batch + 1] = ARGV[i]
    if #batch >= 1000 or i == last then
      changed = changed + redis.call('ZADD', z, 'XX', 'CH', unpack(batch))
      batch = {}
    end
  end
  local missing = {}
  if changed < n then
    for i = first, last do
      if not redis.call('ZSCORE', z, ARGV[i]) then missing[#missing + 1] = ARGV[i] end
    end
  end
  settle(z, h, s)
  out[#out + 1] = seq
  out[#out + 1] = left
  out[#out + 1] = missing
  out[#out + 1] = redis.call('GET', s) or '0'
end
return out
"""
)

# KEYS: zset, hash, seq. Returns seq, then cid, info pairs of the members not expired.
_STATE = (
    _PRELUDE
    + """
local out = {redis.call('GET', KEYS[3]) or '0'}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
if #ids > 0 then
  local all, info = redis.call('HGETALL', KEYS[2]), {}
  for i = 1, #all, 2 do info[all[i]] = all[i + 1] end
  for _, cid in ipairs(ids) do
    out[#out + 1] = cid
    out[#out + 1] = info[cid] or '{}'
  end
end
return out
"""
)

# KEYS: zsets. Returns the count of members not expired, per key.
_COUNT = (
    _PRELUDE
    + """
local out = {}
for i = 1, #KEYS do out[i] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf') end
return out
"""
)


def redis_clients(hosts: Sequence[Mapping[str, Any]]) -> list[aioredis.Redis]:
    """One client per layer host, with the layer's settings and ``socket_timeout=None``
    (blocking reads of an idle store must not time out; see ``redis_channel_layer``)."""
    return [aioredis.Redis(connection_pool=create_pool({**host, "socket_timeout": None})) for host in hosts]


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _pairs(flat: Sequence[Any]) -> dict[str, Info]:
    members: dict[str, Info] = {}
    for i in range(0, len(flat), 2):
        try:
            info = json.loads(flat[i + 1])
        except ValueError:
            info = {}
        members[_str(flat[i])] = info if isinstance(info, dict) else {}
    return members


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisPresence(PresenceBackend):
    """Presence in Redis at the channel layer's ``hosts`` (groups sharded like the layer's).

    ``lifetime`` (seconds) is how long a member stays after its process's last
    heartbeat. Connections use ``socket_timeout=None`` (see ``redis_channel_layer``).
    """

    expires = True

    def __init__(self, hosts: Sequence[Mapping[str, Any]], prefix: str, lifetime: float):
        if not hosts:
            raise ValueError("RedisPresence needs at least one Redis host.")
        self.prefix = prefix
        self.life_ms = max(1, round(lifetime * 1000))
        self._clients = redis_clients(hosts)
        first = self._clients[0]
        self._join = first.register_script(_JOIN)
        self._leave = first.register_script(_LEAVE)
        self._beat = first.register_script(_BEAT)
        self._state = first.register_script(_STATE)
        self._count = first.register_script(_COUNT)

    def __repr__(self) -> str:
        return f"<RedisPresence prefix={self.prefix!r} hosts={len(self._clients)}>"

    def keys(self, group: str) -> list[str]:
        """The zset, hash and counter keys of ``group``."""
        base = f"{self.prefix}:presence:{group}"
        return [base, f"{base}:info", f"{base}:seq"]

    def _client(self, group: str) -> aioredis.Redis:
        return self._clients[self._shard(group)]

    def _shard(self, group: str) -> int:
        return int(_consistent_hash(group, len(self._clients)))

    def _by_host(self, groups: Collection[str]) -> dict[int, list[str]]:
        shards: dict[int, list[str]] = {}
        for group in groups:
            shards.setdefault(self._shard(group), []).append(group)
        return shards

    async def _run(self, script: Any, groups: Collection[str], args: Any, head: Sequence[Any] = ()) -> list[Any]:
        """Run ``script`` over ``groups``, hosts in parallel; results come back in ``groups`` order.

        Each call covers at most ``GROUPS_PER_CALL`` groups, so that a process with
        many rooms does not hold Redis (scripts are atomic) for long at a time.
        """
        per_group: dict[str, list[Any]] = {}

        async def host(index: int, names: list[str]) -> None:
            for start in range(0, len(names), GROUPS_PER_CALL):
                chunk = names[start : start + GROUPS_PER_CALL]
                keys = [key for group in chunk for key in self.keys(group)]
                argv: list[Any] = [self.life_ms, *head]
                for group in chunk:
                    argv.extend(args(group))
                reply = list(await script(keys=keys, args=argv, client=self._clients[index]))
                width = len(reply) // len(chunk)
                for j, group in enumerate(chunk):
                    per_group[group] = reply[j * width : (j + 1) * width]

        await asyncio.gather(*(host(i, names) for i, names in self._by_host(groups).items()))
        return [per_group[group] for group in groups]

    async def join(self, changes: Mapping[str, Mapping[str, Info]]) -> dict[str, Change]:
        def args(group: str) -> list[Any]:
            members = changes[group]
            flat: list[Any] = [len(members)]
            for cid, info in members.items():
                flat += [cid, json.dumps(info, separators=(",", ":"), ensure_ascii=False)]
            return flat

        replies = await self._run(self._join, list(changes), args)
        return {g: Change(int(seq), _pairs(added)) for g, (seq, added) in zip(changes, replies, strict=True)}

    async def leave(self, changes: Mapping[str, Collection[str]]) -> dict[str, Change]:
        def args(group: str) -> list[Any]:
            return [len(changes[group]), *changes[group]]

        replies = await self._run(self._leave, list(changes), args)
        return {g: Change(int(seq), _pairs(left)) for g, (seq, left) in zip(changes, replies, strict=True)}

    async def beat(self, local: Mapping[str, Collection[str]]) -> dict[str, Beat]:
        def args(group: str) -> list[Any]:
            return [len(local[group]), *local[group]]

        replies = await self._run(self._beat, list(local), args, head=[SWEEP_BATCH])
        return {
            g: Beat(int(seq), _pairs(left), [_str(c) for c in missing], int(current))
            for g, (seq, left, missing, current) in zip(local, replies, strict=True)
        }

    async def state(self, group: str) -> tuple[int, dict[str, Info]]:
        reply = await self._state(keys=self.keys(group), args=[self.life_ms], client=self._client(group))
        return int(reply[0]), _pairs(reply[1:])

    async def count(self, group: str) -> int:
        reply = await self._count(keys=self.keys(group)[:1], args=[self.life_ms], client=self._client(group))
        return int(reply[0])

    async def groups(self) -> dict[str, int]:
        head = f"{self.prefix}:presence:"
        found: dict[str, int] = {}
        for client in self._clients:
            zsets = [
                _str(key)
                async for key in client.scan_iter(match=_glob_escape(head) + "*", count=1000, _type="ZSET")
            ]
            for i in range(0, len(zsets), 500):
                chunk = zsets[i : i + 500]
                counts = await self._count(keys=chunk, args=[self.life_ms], client=client)
                found.update({key[len(head) :]: int(n) for key, n in zip(chunk, counts, strict=True) if int(n)})
        return found

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose(close_connection_pool=True)
