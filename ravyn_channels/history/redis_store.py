"""History in the channel layer's Redis: one Redis Stream per room, shared by every process.

Keys, for a Channels group ``G`` under the layer's ``prefix`` (default ``asgi``):

``{prefix}:history:G``       STREAM  one entry per broadcast, id ``<offset>-0``, fields
                                     ``t`` (Redis time, ms), ``k`` (``text``/``json``/``bytes``),
                                     ``d`` (the message), ``s`` (excluded connection ids, JSON, or empty)
``{prefix}:history:G:meta``  HASH    ``epoch`` (random token) and ``seq`` (the last offset assigned)

Every write and read runs one script (atomic): it first makes sure the meta
hash exists — when it is missing (Redis lost its data, or the room's keys
expired) it is created with a new random epoch and ``seq`` 0, and any stream
left without it is deleted — then ``HINCRBY seq`` gives the next offset and
``XADD … MAXLEN <max_messages>`` appends under the id ``<offset>-0``, so the
stream id *is* the offset and ``XRANGE`` reads by offset. Age is enforced by
the scripts too: entries older than ``max_age`` (by Redis's own clock) are
trimmed from the head with ``XTRIM MINID``. With a ``max_age`` the stream
expires ``max_age`` after the last write and the meta hash after
``max(2 * max_age, 1 day)``, so idle rooms leave nothing behind; without one the
keys stay until deleted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any

from channels_redis.utils import _consistent_hash

from ..presence.redis_store import redis_clients
from .store import Entry, HistoryBackend, Limits, Slice, new_epoch

__all__ = ["RedisHistory"]

#: The meta hash outlives an idle stream by this much at least (ms), so that a
#: client up to date with an idle room resumes without a resync.
META_MIN_TTL_MS = 86_400_000

_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local stream, meta = KEYS[1], KEYS[2]
local age = tonumber(ARGV[2])
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
end
local function offset_of(id)
  return tonumber(string.match(id, '^(%d+)'))
end
local function trim()
  if age <= 0 then return end
  local cutoff = now - age
  for _ = 1, 16 do
    local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
    if #oldest == 0 or tonumber(oldest[1][2][2]) >= cutoff then return end
    local rows = redis.call('XRANGE', stream, '-', '+', 'COUNT', 64)
    if #rows == 0 then return end
    for _, row in ipairs(rows) do
      if tonumber(row[2][2]) >= cutoff then
        redis.call('XTRIM', stream, 'MINID', row[1])
        return
      end
    end
    redis.call('XTRIM', stream, 'MINID', (offset_of(rows[#rows][1]) + 1) .. '-0')
  end
end
local function keep()
  if age > 0 then
    redis.call('PEXPIRE', stream, age)
    redis.call('PEXPIRE', meta, math.max(2 * age, tonumber(ARGV[3])))
  end
end
"""

# KEYS: stream, meta. ARGV: new epoch, age ms (0: none), meta min ttl, max length, kind, data, skip.
_APPEND = (
    _PRELUDE
    + """
local n = redis.call('HINCRBY', meta, 'seq', 1)
redis.call('XADD', stream, 'MAXLEN', tonumber(ARGV[4]), n .. '-0', 't', now, 'k', ARGV[5], 'd', ARGV[6], 's', ARGV[7])
trim()
keep()
return {epoch, n, now}
"""
)

# KEYS: stream, meta. ARGV: new epoch, age ms, meta min ttl, after (-1: the newest), limit (-1: all).
_READ = (
    _PRELUDE
    + """
trim()
keep()
local head = tonumber(redis.call('HGET', meta, 'seq'))
local first = head + 1
local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #oldest > 0 then first = offset_of(oldest[1][1]) end
local after, limit = tonumber(ARGV[4]), tonumber(ARGV[5])
local rows = {}
if after >= 0 then
  if limit >= 0 then
    rows = redis.call('XRANGE', stream, (after + 1) .. '-0', '+', 'COUNT', limit)
  else
    rows = redis.call('XRANGE', stream, (after + 1) .. '-0', '+')
  end
elseif limit < 0 then
  rows = redis.call('XRANGE', stream, '-', '+')
elseif limit > 0 then
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', limit)
  for i = #newest, 1, -1 do rows[#rows + 1] = newest[i] end
end
-- Flat: offset, time, kind, data, skip per entry (half the reply elements of XRANGE's rows).
local flat = {}
local text = true
for _, row in ipairs(rows) do
  local f = row[2]
  flat[#flat + 1] = offset_of(row[1])
  flat[#flat + 1] = f[2]
  flat[#flat + 1] = f[4]
  flat[#flat + 1] = f[6]
  flat[#flat + 1] = f[8] or ''
  if f[4] == 'bytes' then text = false end
end
-- Text only (valid UTF-8): one JSON string, which the client decodes in C at once, rather than
-- five reply elements per entry for its reply parser.
if text and #flat > 0 then return {epoch, head, first, cjson.encode(flat)} end
return {epoch, head, first, flat}
"""
)


def _str(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _entries(epoch: str, flat: Sequence[Any] | bytes) -> list[Entry]:
    """The entries of a read's reply: five values per entry, or (text only) the same as one JSON array."""
    if isinstance(flat, (bytes, str)):
        values: Sequence[Any] = json.loads(flat)
        return [
            Entry(epoch, int(values[i]), int(values[i + 1]) / 1000, values[i + 2], values[i + 3],
                  tuple(json.loads(values[i + 4])) if values[i + 4] else ())
            for i in range(0, len(values), 5)
        ]  # fmt: skip
    out = []
    for i in range(0, len(flat), 5):
        offset, t, kind_raw, raw, skip_raw = flat[i : i + 5]
        kind = _str(kind_raw)
        data: str | bytes = bytes(raw) if kind == "bytes" else _str(raw)
        skip_text = _str(skip_raw)
        skip = tuple(json.loads(skip_text)) if skip_text else ()
        out.append(Entry(epoch, int(offset), int(t) / 1000, kind, data, skip))
    return out


class RedisHistory(HistoryBackend):
    """History in Redis at the channel layer's ``hosts`` (rooms sharded like the layer's groups)."""

    def __init__(self, hosts: Sequence[Mapping[str, Any]], prefix: str):
        if not hosts:
            raise ValueError("RedisHistory needs at least one Redis host.")
        self.prefix = prefix
        self._clients = redis_clients(hosts)
        self._append = self._clients[0].register_script(_APPEND)
        self._read = self._clients[0].register_script(_READ)
        self._closed = False

    def __repr__(self) -> str:
        return f"<RedisHistory prefix={self.prefix!r} hosts={len(self._clients)}>"

    def keys(self, group: str) -> list[str]:
        """The stream and meta keys of ``group``."""
        base = f"{self.prefix}:history:{group}"
        return [base, f"{base}:meta"]

    def _client(self, group: str) -> Any:
        return self._clients[int(_consistent_hash(group, len(self._clients)))]

    @staticmethod
    def _age(limits: Limits) -> int:
        return 0 if limits.max_age is None else max(1, round(limits.max_age * 1000))

    async def append(self, group: str, kind: str, data: str | bytes, skip: tuple[str, ...], limits: Limits) -> Entry:
        skip_text = json.dumps(list(skip)) if skip else ""
        args: list[Any] = [new_epoch(), self._age(limits), META_MIN_TTL_MS, limits.max_messages, kind, data, skip_text]
        epoch, offset, now = await self._append(keys=self.keys(group), args=args, client=self._client(group))
        return Entry(_str(epoch), int(offset), int(now) / 1000, kind, data, skip)

    async def read(self, group: str, after: int | None, limit: int | None, limits: Limits) -> Slice:
        args: list[Any] = [
            new_epoch(),
            self._age(limits),
            META_MIN_TTL_MS,
            -1 if after is None else max(0, after),
            -1 if limit is None else max(0, limit),
        ]
        epoch, head, first, flat = await self._read(keys=self.keys(group), args=args, client=self._client(group))
        text = _str(epoch)
        return Slice(text, int(head), int(first), _entries(text, flat))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.gather(*(c.aclose(close_connection_pool=True) for c in self._clients))
