"""Presence across two real daphne processes sharing Redis: counts, crashes, events, residue."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from ravyn_channels.rooms import group_name
from tests.conftest import Record

from .conftest import REDIS_URL, ROOT, Server, StartServer, free_port, server_env

pytestmark = [pytest.mark.integration, pytest.mark.redis]

APP = "tests.integration.apps.presence:app"
TTL = 3.0

SETTINGS = """\
from ravyn_channels.layers import redis_channel_layer
SECRET_KEY = "x"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", "channels",
                  "ravyn_channels"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": %(db)r}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ROOT_URLCONF = "ravyn_channels.standalone"
CHANNEL_LAYERS = {"default": redis_channel_layer(%(url)r, pubsub=%(pubsub)r, prefix=%(prefix)r, **%(config)r)}
RAVYN_CHANNELS = {"AUTODISCOVER": [], "PRESENCE_TTL": %(ttl)r}
"""


USERS = (1, 2, 7, 8)

LOGIN = f"""\
import json, django
django.setup()
from django.core.management import call_command
from django.contrib.auth.models import User
from django.test import Client
call_command("migrate", verbosity=0, interactive=False)
sessions = {{}}
for n in {USERS!r}:
    User.objects.create_user(f"u{{n}}", password="pw", id=n)
    client = Client()
    assert client.login(username=f"u{{n}}", password="pw")  # Django's session login
    sessions[n] = client.cookies["sessionid"].value
print(json.dumps(sessions))
"""


class Logins:
    """A migrated SQLite database where users u1, u2, u7 and u8 (pk 1, 2, 7, 8) have logged in
    through Django's session auth; each cluster gets a copy, and sends a user's session cookie."""

    def __init__(self, directory: Path):
        self.db = directory / "presence.sqlite3"
        (directory / "presence_settings.py").write_text(
            SETTINGS
            % {"url": REDIS_URL, "pubsub": True, "prefix": "unused", "config": {}, "ttl": TTL, "db": str(self.db)}
        )
        env = server_env("presence_settings", PYTHONPATH=f"{directory}{os.pathsep}{ROOT}")
        done = subprocess.run(
            [sys.executable, "-c", LOGIN], env=env, cwd=ROOT, check=True, timeout=120, capture_output=True, text=True
        )
        self.sessions = {int(k): v for k, v in json.loads(done.stdout).items()}

    def as_user(self, n: int) -> dict[str, Any]:
        """``ws_connect`` arguments that send user ``n``'s session cookie."""
        return {"additional_headers": {"Cookie": f"sessionid={self.sessions[n]}"}}


@pytest.fixture(scope="module")
def logins(tmp_path_factory: pytest.TempPathFactory) -> Logins:
    return Logins(tmp_path_factory.mktemp("logins"))


class Cluster:
    """Two daphne processes on one Redis prefix, and what a third process needs to join them."""

    def __init__(
        self,
        tmp_path: Path,
        start_server: StartServer,
        logins: Logins,
        pubsub: bool = True,
        redis_url: str = REDIS_URL,
        ttl: float = TTL,
        **config: Any,
    ):
        self.prefix = f"rc-test-{uuid.uuid4().hex[:8]}"
        self.redis_url = redis_url
        db = tmp_path / "presence.sqlite3"
        shutil.copyfile(logins.db, db)
        self.as_user = logins.as_user
        values = {"url": redis_url, "pubsub": pubsub, "prefix": self.prefix, "config": config, "ttl": ttl}
        values["db"] = str(db)
        (tmp_path / "presence_settings.py").write_text(SETTINGS % values)
        self.env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
        self.a = start_server(APP, settings="presence_settings", env=self.env)
        self.b = start_server(APP, settings="presence_settings", env=self.env)

    def run(self, *argv: str) -> str:
        """Run ``python argv...`` with the cluster's settings (a view, a worker, manage.py)."""
        env = server_env("presence_settings", **self.env)
        done = subprocess.run(
            [sys.executable, *argv], env=env, cwd=ROOT, check=True, timeout=60, capture_output=True, text=True
        )
        return done.stdout

    def keys(self) -> dict[str, int]:
        """Presence keys left in Redis under this cluster's prefix, with their sizes."""
        import redis

        r = redis.Redis.from_url(self.redis_url)
        try:
            sizes = {}
            for key in r.scan_iter(f"{self.prefix}:presence:*"):
                kind = r.type(key).decode()
                sizes[key.decode()[len(self.prefix) + 10 :]] = {"zset": r.zcard, "hash": r.hlen}.get(
                    kind, lambda k: 1
                )(key)
            return sizes
        finally:
            r.close()


def url(server: Server, room: str, **query: Any) -> str:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{server.ws}/presence/{room}" + (f"?{qs}" if qs else "")


async def recv(ws: Any, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def ask(ws: Any, command: str) -> Any:
    await ws.send(command)
    return await recv(ws)


async def cid(ws: Any) -> str:
    await ws.send("id")
    return str(await asyncio.wait_for(ws.recv(), 5))


async def pid(ws: Any) -> str:
    """The socket's id in presence frames (``member_id``: opaque, not its connection id)."""
    await ws.send("pid")
    return str(await asyncio.wait_for(ws.recv(), 5))


async def converge(ws: Any, command: str, expected: Any, timeout: float) -> tuple[Any, float]:
    """Ask until the answer is ``expected`` (bounded); returns the last answer and the seconds it took."""
    start = time.monotonic()
    answer = await ask(ws, command)
    while answer != expected and time.monotonic() - start < timeout:
        await asyncio.sleep(0.1)
        answer = await ask(ws, command)
    return answer, time.monotonic() - start


class Watcher:
    """A subscribed client's presence frames, checked as they come: one state, then consecutive diffs."""

    def __init__(self, ws: Any, strict: bool = True):
        self.ws = ws
        self.strict = strict  # consecutive numbers (False: only increasing, as after a repair)
        self.members: dict[str, Any] = {}
        self.joined: list[str] = []
        self.left: list[str] = []
        self.seq = 0

    async def start(self) -> str:
        """Read the state, then ask for this socket's id (diffs arriving meanwhile are checked too)."""
        state = await recv(self.ws)
        assert state["type"] == "presence_state"
        self.members, self.seq = dict(state["members"]), state["seq"]
        await self.ws.send("pid")
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), 5)
            if not raw.startswith("{"):
                return str(raw)
            self.take(json.loads(raw))

    async def until(self, done: Any, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self) and time.monotonic() < deadline:
            try:
                frame = await recv(self.ws, max(0.1, deadline - time.monotonic()))
            except TimeoutError:
                break
            self.take(frame)

    def take(self, frame: dict[str, Any]) -> None:
        assert frame["type"] == "presence_diff", frame
        if self.strict:
            assert frame["seq"] == self.seq + 1, f"diff {frame['seq']} after {self.seq}"
        assert frame["seq"] > self.seq, f"diff {frame['seq']} after {self.seq}"
        self.seq = frame["seq"]
        for c in frame["leaves"]:
            assert c in self.members, f"{c} left without having joined"
            del self.members[c]
            self.left.append(c)
        for c, info in frame["joins"].items():
            assert c not in self.members, f"{c} joined twice"
            self.members[c] = info
            self.joined.append(c)


# -- the tests -------------------------------------------------------------------------------


async def test_count_members_users_across_processes_and_from_sync_code(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    cluster = Cluster(tmp_path, start_server, logins)
    a, b = cluster.a, cluster.b
    room = f"lobby-{uuid.uuid4().hex[:6]}"
    login = cluster.as_user
    async with ws_connect(url(a, room, nick="a1"), **login(1)) as a1, ws_connect(url(a, room, nick="a2")) as a2:
        async with ws_connect(url(b, room, nick="b1"), **login(1)) as b1, ws_connect(url(b, room), **login(2)) as b2:
            ids = [await cid(ws) for ws in (a1, a2, b1, b2)]
            assert await ask(a1, "count") == {"count": 4}
            assert await ask(b2, "count") == {"count": 4}
            members = (await ask(b1, "members"))["members"]
            assert sorted(m[0] for m in members) == sorted(ids)
            assert {m[0]: (m[1], m[2]["nick"]) for m in members}[ids[2]] == ("1", "b1")
            assert await ask(a2, "users") == {"users": [["1", "u1", 2], ["2", "u2", 1]]}

            script = (
                "import django; django.setup()\n"
                "from ravyn_channels import ConnectionManager\n"
                "m = ConnectionManager('tests.presence', presence=True)\n"
                f"print(m.count_sync({room!r}), m.count_sync() >= 4, len(m.members_sync({room!r})))\n"
                f"print([u.username for u in m.users_sync({room!r})])\n"
            )
            out = await asyncio.to_thread(cluster.run, "-c", script)
            assert out.splitlines() == ["4 True 4", "['u1', 'u2']"]

            listing = await asyncio.to_thread(
                cluster.run, "manage.py", "ws_presence", "--manager", "tests.presence", room
            )
            assert all(i in listing for i in ids) and "4 connections" in listing
        answer, _ = await converge(a1, "count", {"count": 2}, 10)
        assert answer == {"count": 2}


@pytest.mark.parametrize("pubsub", [True, False], ids=["RedisPubSubChannelLayer", "RedisChannelLayer"])
async def test_sigkill_one_process_and_the_other_converges(
    redis_ready: None,
    logins: Logins,
    tmp_path: Path,
    start_server: StartServer,
    ws_connect: Any,
    pubsub: bool,
    evidence: Record,
) -> None:
    cluster = Cluster(tmp_path, start_server, logins, pubsub=pubsub)
    a, b = cluster.a, cluster.b
    room = f"crash-{uuid.uuid4().hex[:6]}"
    async with AsyncExitStack() as stack:
        watching = await stack.enter_async_context(ws_connect(url(a, room, watch=1)))
        on_a = await stack.enter_async_context(ws_connect(url(a, room)))
        watcher = Watcher(watching)
        ids_a = [await watcher.start(), await pid(on_a)]
        victims = [await stack.enter_async_context(ws_connect(url(b, room, nick=f"b{i}"))) for i in range(3)]
        ids_b = [await pid(ws) for ws in victims]
        await watcher.until(lambda w: set(ids_b) <= set(w.members))
        assert await ask(on_a, "count") == {"count": 5}

        b.stop(signal.SIGKILL)  # no close frames, no cleanup: only expiry can tell
        killed = time.monotonic()
        answer, _ = await converge(on_a, "count", {"count": 2}, 4 * TTL)
        took = time.monotonic() - killed
        assert answer == {"count": 2}, f"count did not converge within {4 * TTL}s: {answer}"
        await watcher.until(lambda w: set(ids_b) <= set(w.left), timeout=4 * TTL)
        announced = time.monotonic() - killed
        assert sorted(watcher.left) == sorted(ids_b)
        assert sorted(watcher.members) == sorted(ids_a)
        evidence(f"SIGKILL: count right after (TTL {TTL} s)", took, f"<= TTL = {TTL} s", "s")
        evidence(f"SIGKILL: leaves announced after (TTL {TTL} s)", announced, f"<= {TTL * 1.25} s", "s")
        # The README's bounds: gone from count within 3/4·TTL of B's last heartbeat (so within TTL of
        # the kill), announced within TTL; one heartbeat interval (TTL/4) of slack for a loaded machine.
        assert took <= TTL, f"count took {took:.2f}s after SIGKILL (bound: TTL = {TTL}s)"
        assert announced <= TTL * 1.25, f"leaves announced {announced:.2f}s after SIGKILL (bound {TTL * 1.25}s)"
        # Announced once: two more of A's heartbeats (the only thing that could announce them again)
        # bring no frame at all.
        await watcher.until(lambda w: False, timeout=TTL / 2)
        assert sorted(watcher.left) == sorted(ids_b)
    assert "Presence store unavailable" not in a.log()


async def test_sigterm_announces_leaves_without_waiting_for_expiry(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    cluster = Cluster(tmp_path, start_server, logins, ttl=600.0)  # expiry cannot explain what follows
    a, b = cluster.a, cluster.b
    room = f"stop-{uuid.uuid4().hex[:6]}"
    async with AsyncExitStack() as stack:
        watching = await stack.enter_async_context(ws_connect(url(a, room, watch=1)))
        on_a = await stack.enter_async_context(ws_connect(url(a, room)))
        watcher = Watcher(watching)
        await watcher.start()
        await pid(on_a)
        leaving = [await stack.enter_async_context(ws_connect(url(b, room))) for _ in range(3)]
        ids_b = [await pid(ws) for ws in leaving]
        await watcher.until(lambda w: set(ids_b) <= set(w.members))
        b.stop(signal.SIGTERM)  # daphne closes every client (1001); handlers and cleanups run
        await watcher.until(lambda w: set(ids_b) <= set(w.left), timeout=10)
        assert sorted(watcher.left) == sorted(ids_b)
        assert await ask(on_a, "count") == {"count": 2}


async def test_joins_and_leaves_reach_a_subscriber_on_the_other_process_once_and_in_order(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    cluster = Cluster(tmp_path, start_server, logins)
    a, b = cluster.a, cluster.b
    room = f"events-{uuid.uuid4().hex[:6]}"
    async with ws_connect(url(a, room, watch=1)) as watching:
        watcher = Watcher(watching)
        me = await watcher.start()

        async def visit(server: Server, i: int) -> str:
            async with ws_connect(url(server, room, nick=f"n{i}")) as ws:
                ident = await pid(ws)
                await asyncio.sleep(0.05 * (i % 4))
            return ident

        # Both processes announce changes at once: the events race through Redis.
        ids = await asyncio.gather(*(visit(b if i % 3 else a, i) for i in range(30)))
        await watcher.until(lambda w: set(ids) <= set(w.left))
        # Each visitor joined once and left once, joins before leaves (checked frame by frame).
        assert sorted(watcher.joined) == sorted(ids) and sorted(watcher.left) == sorted(ids)
        assert list(watcher.members) == [me]
        # And nothing more: the next frame is a marker's join (a stray or repeated frame before it
        # would fail the watcher's checks: numbers consecutive, no one joins or leaves twice).
        async with ws_connect(url(b, room, nick="marker")) as marker:
            marker_id = await cid(marker)
            frame = await recv(watching)
            watcher.take(frame)
            assert list(frame["joins"]) == [marker_id] and frame["leaves"] == {}


async def test_send_to_user_reaches_the_users_connections_on_every_process(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    cluster = Cluster(tmp_path, start_server, logins)
    a, b = cluster.a, cluster.b
    room = f"dm-{uuid.uuid4().hex[:6]}"
    login = cluster.as_user
    async with ws_connect(url(a, room), **login(7)) as u7a, ws_connect(
        url(b, "elsewhere"), **login(7)
    ) as u7b, ws_connect(url(b, room), **login(8)) as u8, ws_connect(url(a, room)) as anon:
        for ws in (u7a, u7b, u8, anon):
            await pid(ws)
        await u8.send("touser:7 hello seven")
        assert [await asyncio.wait_for(ws.recv(), 5) for ws in (u7a, u7b)] == ["hello seven"] * 2
        script = (
            "import django; django.setup()\n"
            "from ravyn_channels import ConnectionManager\n"
            "m = ConnectionManager('tests.presence', presence=True)\n"
            "m.send_to_user_sync(8, 'from a view')\n"
            "m.broadcast_sync('marker')\n"  # to everyone in the manager, after it, through the same group
        )
        await asyncio.to_thread(cluster.run, "-c", script)
        assert [await asyncio.wait_for(u8.recv(), 5) for _ in range(2)] == ["from a view", "marker"]
        for ws in (u7a, u7b, anon):  # nothing else reached them before the marker
            assert await asyncio.wait_for(ws.recv(), 5) == "marker"


async def test_live_members_outlast_group_expiry_and_events_keep_flowing(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    cluster = Cluster(tmp_path, start_server, logins, pubsub=False, group_expiry=2)
    a, b = cluster.a, cluster.b
    room = f"long-{uuid.uuid4().hex[:6]}"
    async with ws_connect(url(a, room, watch=1)) as watching, ws_connect(url(a, room)) as on_a, ws_connect(
        url(b, room)
    ) as on_b:
        watcher = Watcher(watching)
        await watcher.start()
        await pid(on_a), await pid(on_b)
        await asyncio.sleep(3 * TTL)  # past group_expiry (2 s) and past the members' lifetime
        assert await ask(on_a, "count") == {"count": 3}
        assert await ask(on_b, "count") == {"count": 3}
        async with ws_connect(url(b, room)) as late:
            late_id = await pid(late)
            await watcher.until(lambda w: late_id in w.members)  # B's event still reaches A
            assert late_id in watcher.members
            await late.send("say:still here")
            assert await asyncio.wait_for(on_a.recv(), 5) == f"{room}: still here"


async def test_a_thousand_joins_and_leaves_leave_nothing_in_redis(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any
) -> None:
    cluster = Cluster(tmp_path, start_server, logins)
    a, b = cluster.a, cluster.b
    tag = uuid.uuid4().hex[:6]
    async with ws_connect(url(b, f"r0-{tag}", watch=1)) as watching:
        watcher = Watcher(watching)
        stayer = await watcher.start()
        visitors = []
        for i in range(1000):
            async with ws_connect(url(a if i % 2 else b, f"r{i % 7}-{tag}")) as ws:
                if i % 10 == 0:
                    await ws.send("crash:")  # the handler raises: 1011, no disconnect() call
                    await asyncio.wait_for(ws.wait_closed(), 5)
                    assert ws.close_code == 1011
                if i % 7 == 0:
                    visitors.append(i)
        await watcher.until(lambda w: len(w.left) == len(visitors), timeout=30)
        assert len(watcher.joined) == len(visitors) and sorted(watcher.joined) == sorted(watcher.left)
        assert list(watcher.members) == [stayer]
        everyone = "ravyn.all." + hashlib.blake2b(b"manager:tests.presence", digest_size=16).hexdigest()
        stayed = group_name(f"r0-{tag}", "tests.presence")
        # Only the stayer's room and the manager-wide group remain, each with one member.
        expected = {stayed: 1, f"{stayed}:info": 1, everyone: 1, f"{everyone}:info": 1}
        assert await settled(cluster, expected) == expected
    assert await settled(cluster, {}) == {}
    assert cluster.keys() == {}  # counters included


async def settled(cluster: Cluster, expected: dict[str, int], timeout: float = 10.0) -> dict[str, int]:
    """The presence keys (without counters) once they match ``expected``, or after ``timeout``."""
    for _ in range(int(timeout * 10)):
        left = {k: v for k, v in cluster.keys().items() if not k.endswith(":seq")}
        if left == expected:
            break
        await asyncio.sleep(0.1)
    return left


def start_redis(port: int, tmp_path: Path) -> subprocess.Popen[bytes]:
    """A private redis-server without persistence: killing it loses every key."""
    import redis

    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            redis.Redis(port=port, socket_connect_timeout=0.2).ping()
            return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("private redis-server did not start")


async def test_presence_comes_back_after_redis_loses_everything(
    redis_ready: None, logins: Logins, tmp_path: Path, start_server: StartServer, ws_connect: Any, evidence: Record
) -> None:
    port = free_port()
    redis_proc = start_redis(port, tmp_path)
    try:
        cluster = Cluster(tmp_path, start_server, logins, redis_url=f"redis://127.0.0.1:{port}/0")
        a, b = cluster.a, cluster.b
        room = "restart"
        async with ws_connect(url(a, room, watch=1)) as watching, ws_connect(url(a, room)) as on_a, ws_connect(
            url(b, room)
        ) as on_b:
            watcher = Watcher(watching, strict=False)
            ids = [await watcher.start(), await pid(on_a), await pid(on_b)]
            await watcher.until(lambda w: set(ids) <= set(w.members))

            redis_proc.kill()  # SIGKILL, no persistence: the store is gone
            redis_proc.wait(5)
            async with ws_connect(url(b, room)) as during:  # connecting still works while Redis is down
                during_id = await pid(during)
                await asyncio.sleep(1.0)
                redis_proc = start_redis(port, tmp_path)
                # Heartbeats put every live member back, including the one that joined during the outage.
                answer, took = await converge(on_a, "count", {"count": 4}, 6 * TTL)
                assert answer == {"count": 4}
                await watcher.until(lambda w: set(w.members) == {*ids, during_id}, timeout=6 * TTL)
                assert set(watcher.members) == {*ids, during_id}
                # Every process's next heartbeat (each TTL/4) puts its members back; one more of slack.
                evidence(f"Redis lost every key: count right again after (TTL {TTL} s)", took, f"<= {TTL / 2} s", "s")
                assert took <= TTL / 2, f"presence complete again only {took:.2f}s after Redis came back"
        for server in (a, b):
            assert "Presence update" not in server.log()  # no unexpected failure in the worker
        assert "Presence store unavailable" in b.log()
        assert "Presence store reachable again" in b.log()
    finally:
        redis_proc.kill()
        redis_proc.wait(5)
