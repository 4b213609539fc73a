"""The Redis presence store on its own, against real Redis: scripts, expiry, sweeping, sharding."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from ravyn_channels.presence.redis_store import RedisPresence

from .conftest import REDIS_URL

pytestmark = [pytest.mark.integration, pytest.mark.redis]

LIFE = 0.4  # seconds a member stays without a heartbeat


@pytest.fixture
async def prefix(redis_ready: None) -> AsyncIterator[str]:
    """A fresh key prefix; the test must leave nothing under it."""
    name = f"rc-store-{uuid.uuid4().hex[:8]}"
    yield name
    r = redis.Redis.from_url(REDIS_URL)
    try:
        left = [k.decode() for k in r.scan_iter(f"{name}:*")]
        for db in (1,):
            r1 = redis.Redis.from_url(REDIS_URL.rsplit("/", 1)[0] + f"/{db}")
            left += [k.decode() for k in r1.scan_iter(f"{name}:*")]
            r1.close()
    finally:
        r.close()
    assert left == [], f"presence keys left in Redis: {left}"


def store(prefix: str, *urls: str) -> RedisPresence:
    return RedisPresence([{"address": u} for u in (urls or (REDIS_URL,))], prefix, LIFE)


async def test_join_leave_count_state(prefix: str) -> None:
    s = store(prefix)
    try:
        joined = await s.join({"g": {"c1": {"meta": {"a": 1}}, "c2": {}}, "h": {"c1": {}}})
        assert set(joined["g"].members) == {"c1", "c2"} and joined["g"].seq > 0
        again = await s.join({"g": {"c1": {"meta": {"changed": True}}}})
        assert again["g"].seq == 0 and again["g"].members == {}  # already there: no change, no event
        seq, members = await s.state("g")
        assert seq == joined["g"].seq and members == {"c1": {"meta": {"a": 1}}, "c2": {}}
        assert await s.count("g") == 2 and await s.groups() == {"g": 2, "h": 1}
        left = await s.leave({"g": ["c1", "nobody"], "h": ["c1"]})
        assert left["g"].members == {"c1": {"meta": {"a": 1}}} and left["g"].seq == seq + 1
        assert (await s.leave({"g": ["c1"]}))["g"].seq == 0  # only one leave is ever reported
        await s.leave({"g": ["c2"]})
        assert await s.groups() == {}
    finally:
        await s.aclose()


async def test_expired_members_leave_the_count_then_one_sweep_reports_them(prefix: str) -> None:
    alive, crashed = store(prefix), store(prefix)  # two processes; the second stops heartbeating
    try:
        await alive.join({"g": {"live": {}}})
        joined = await crashed.join({"g": {"d1": {"meta": {"n": 1}}, "d2": {"meta": {"n": 2}}}})
        await asyncio.sleep(LIFE * 0.6)
        await alive.beat({"g": ["live"]})  # before d1 and d2 expire: nothing to sweep yet
        await asyncio.sleep(LIFE * 0.6)  # now they have expired, and nobody has swept them
        assert await alive.count("g") == 1
        assert list((await alive.state("g"))[1]) == ["live"]
        # Two processes sweep at the same moment: exactly one reports the leave, as one change.
        beats = await asyncio.gather(alive.beat({"g": ["live"]}), crashed.beat({"g": ["live"]}))
        reports = [b["g"] for b in beats if b["g"].left]
        assert len(reports) == 1
        assert reports[0].left == {"d1": {"meta": {"n": 1}}, "d2": {"meta": {"n": 2}}}
        assert reports[0].seq == joined["g"].seq + 1
        assert [b["g"].current for b in beats] == [reports[0].seq] * 2
        assert (await alive.leave({"g": ["d1"]}))["g"].seq == 0  # nothing left to report
        await alive.leave({"g": ["live"]})
    finally:
        await alive.aclose()
        await crashed.aclose()


async def test_heartbeat_reports_members_the_store_lost(prefix: str) -> None:
    s = store(prefix)
    try:
        await s.join({"g": {"c1": {}}})
        await asyncio.sleep(LIFE * 1.5)  # nobody beat: the keys themselves expired
        r = redis.Redis.from_url(REDIS_URL)
        assert list(r.scan_iter(f"{prefix}:*")) == []
        r.close()
        beat = (await s.beat({"g": ["c1"]}))["g"]
        assert beat.missing == ["c1"] and beat.left == {}
        rejoined = await s.join({"g": {"c1": {}}})
        assert rejoined["g"].seq > beat.current  # a new counter starts above any old number
        await s.leave({"g": ["c1"]})
    finally:
        await s.aclose()


async def test_rooms_are_spread_over_several_hosts(prefix: str) -> None:
    base = REDIS_URL.rsplit("/", 1)[0]
    s = store(prefix, f"{base}/0", f"{base}/1")  # two "hosts": two databases of one server
    try:
        groups = {f"room{i}": {f"c{i}": {"meta": {"i": i}}} for i in range(250)}  # several calls per host
        joined = await s.join(groups)
        assert all(change.seq for change in joined.values())
        assert await s.groups() == dict.fromkeys(groups, 1)
        beats = await s.beat({g: list(m) for g, m in groups.items()})
        assert all(b.missing == [] and b.left == {} for b in beats.values())
        hosts = {s._shard(g) for g in groups}
        assert hosts == {0, 1}
        left = await s.leave({g: list(m) for g, m in groups.items()})
        assert {g: list(c.members) for g, c in left.items()} == {g: list(m) for g, m in groups.items()}
    finally:
        await s.aclose()
