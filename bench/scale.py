"""Scale runs (``python -m bench --scale``): 10,000 connections, four processes, many rooms, a restart.

Everything listens on 127.0.0.1. The Redis runs use a private ``redis-server``
started here on a free port (no persistence), so that ``INFO commandstats``
counts this run's commands only; it is stopped at the end. Counts are the
issue's unless ``--scale-fraction`` shrinks them for a quick try.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .servers import ROOT, Server, cpus, free_port, pinned, terminate

#: Descriptors the benchmark may need: 10,000 client sockets in the client, as many in a server.
FD_LIMIT = 20000
#: daphne's ``-b``/``-p`` listen with Twisted's default backlog; the storm also runs with a larger one
#: (``daphne -e tcp:port=...:backlog=4096``; Linux caps it at ``net.core.somaxconn``).
DAPHNE_BACKLOG = 50
STORM_BACKLOG = 4096
OVER_CAPACITY = re.compile(r"(\d+) of \d+ channels over capacity in group")


@dataclass
class ScalePlan:
    idle_clients: int = 10_000
    procs: int = 4
    cluster_clients: int = 10_000  # 2,500 per process
    chat_rooms: int = 1_000
    chat_members: int = 10
    storm_clients: int = 5_000
    storm_members: int = 10
    samples: int = 10
    slice: float = 5.0
    window: int = 8
    limit: float = 120.0
    #: Handshakes in flight while opening: daphne refuses (403) a connection its application has not
    #: accepted within --websocket_connect_timeout (5 s); more in flight only adds to each one's wait.
    concurrency: int = 50

    def scaled(self, fraction: float) -> ScalePlan:
        def f(n: int, lo: int) -> int:
            return max(lo, int(n * fraction))

        return ScalePlan(
            idle_clients=f(self.idle_clients, 50),
            cluster_clients=f(self.cluster_clients, 40),
            chat_rooms=f(self.chat_rooms, 8),
            storm_clients=f(self.storm_clients, 50),
            samples=max(3, int(self.samples * fraction) or 3),
            slice=max(1.0, self.slice * fraction),
        )


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, FD_LIMIT)) if hard != resource.RLIM_INFINITY else max(soft, FD_LIMIT)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


class PrivateRedis:
    """A throw-away ``redis-server`` on 127.0.0.1 (no persistence) for exact command counts."""

    def __init__(self, logdir: Path):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.port = free_port()
        self._log = open(logdir / f"redis-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            pinned([binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                    "--maxclients", "20000"], cpus()[0]),
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 10
        import redis

        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url).ping():
                    return
            except redis.RedisError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()


def _stop_pid(pid: int) -> None:
    """Stop a server the client process restarted (started by this run, so ours to stop)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_scale(runner: Any, plan: ScalePlan) -> dict[str, Any]:
    """Run the four scale workloads; ``runner`` is the ``Runner`` (logging, servers, client)."""
    limit = raise_fd_limit()
    runner.log(f"[scale] file descriptor limit {limit}")
    out: dict[str, Any] = {"plan": vars(plan)}
    common = {"samples": plan.samples, "slice": plan.slice, "window": plan.window, "limit": plan.limit,
              "concurrency": plan.concurrency, "settle": 2.0}  # fmt: skip
    seconds: dict[str, float] = {}  # wall time of each workload, servers' start and stop included

    @contextlib.contextmanager
    def timed(key: str) -> Iterator[None]:
        t = time.monotonic()
        try:
            yield
        finally:
            seconds[key] = round(time.monotonic() - t, 1)

    # 1. Idle connections on one daphne process, in-memory layer: ravyn, ref, list loop.
    variants = ("ravyn", "ref", "listloop")
    runner.log(f"[scale] {plan.idle_clients:,} connections on one daphne process: {', '.join(variants)}")
    with timed("idle"):
        started = runner._start(variants, "daphne", "memory")
        try:
            targets = runner._targets(started, "/fanout/big", variants)
            out["idle"] = runner._client(
                {"workload": "scale_room", "targets": targets, "clients": plan.idle_clients, **common}, 3000
            )
        finally:
            runner._stop(started)

    redis = PrivateRedis(runner.logdir)
    old = os.environ.get("REDIS_URL")
    os.environ["REDIS_URL"] = redis.url  # the servers' settings read it
    try:
        # 2. Four daphne processes on RedisChannelLayer, one room.
        runner.log(f"[scale] {plan.procs} daphne processes on Redis, {plan.cluster_clients:,} clients in one room")
        with timed("cluster"):
            started = runner._start(("ravyn",), "daphne", "redis", copies=plan.procs)
            try:
                targets = runner._targets(started, "/fanout/one", ("ravyn",))
                out["cluster"] = runner._client(
                    {"workload": "scale_room", "targets": targets, "clients": plan.cluster_clients,
                     "redis": redis.url, **common}, 3000,
                )  # fmt: skip
            finally:
                runner._stop(started)

        # 3. Chat-shaped: many rooms of ten over four processes, every room sending; ravyn vs ref.
        runner.log(f"[scale] chat: {plan.chat_rooms:,} rooms of {plan.chat_members} over {plan.procs} processes")
        with timed("chat"):
            started = runner._start(("ravyn", "ref"), "daphne", "redis", copies=plan.procs)
            try:
                targets = runner._targets(started, "/fanout/chat", ("ravyn", "ref"))
                out["chat"] = runner._client(
                    {"workload": "scale_chat", "targets": targets, "rooms": plan.chat_rooms,
                     "members": plan.chat_members, **common}, 3000,
                )  # fmt: skip
                for variant, (dropped, pool) in over_capacity(started).items():
                    if isinstance(out["chat"].get(variant), dict):
                        out["chat"][variant]["dropped_over_capacity"] = dropped
                        out["chat"][variant]["redis_pool_exhausted"] = pool
            finally:
                runner._stop(started)

        # 4. Reconnect storm after a restart of one daphne process (ravyn, Redis layer): daphne's
        # default listen backlog (Twisted's 50), then a larger one, to show what the queue costs.
        for key, backlog in (("storm", None), ("storm_backlog", STORM_BACKLOG)):
            runner.log(
                f"[scale] reconnect storm: {plan.storm_clients:,} clients, daphne restarted, "
                f"listen backlog {backlog or DAPHNE_BACKLOG}"
            )
            with timed(key):
                out[key] = _storm(runner, plan, redis.url, common, backlog)
    finally:
        if old is None:
            os.environ.pop("REDIS_URL", None)
        else:
            os.environ["REDIS_URL"] = old
        redis.stop()
    out["seconds"] = seconds
    return out


def _storm(runner: Any, plan: ScalePlan, redis_url: str, common: dict[str, Any], backlog: int | None) -> Any:
    started = runner._start(("ravyn",), "daphne", "redis", backlog=backlog)
    server: Server = started["ravyn"][0]
    result: Any = None
    try:
        spec = {
            "workload": "scale_storm",
            "url": server.url("/fanout/storm"),
            "clients": plan.storm_clients,
            "members": plan.storm_members,
            "backlog": backlog or DAPHNE_BACKLOG,
            "backoff": True,  # retry as the project's JavaScript clients do
            "pid": server.pid,
            "argv": pinned(server.proc.args, cpus()[0]),  # type: ignore[arg-type]
            "cwd": str(ROOT),
            "env": server.env,
            "log": str(server.log_path),
            "redis": redis_url,
            **common,
        }
        log_start = server.log_path.stat().st_size
        result = runner._client(spec, 3000)
        if isinstance(result, dict) and "error" not in result:
            with open(server.log_path, "rb") as f:
                f.seek(log_start)
                result["closed_for_handshake_timeout"] = f.read().count(b"(HANDSHAKE_TIMEOUT)")
        return result
    finally:
        runner._stop(started)
        if isinstance(result, dict) and result.get("new_pid"):
            _stop_pid(result["new_pid"])


def over_capacity(started: dict[str, list[Server]]) -> dict[str, tuple[int, int]]:
    """Per variant, from the servers' logs: channels whose message channels-redis dropped over capacity
    (its INFO lines "N of M channels over capacity in group G"), and layer operations that failed
    because the process's Redis connection pool was exhausted (redis-py's ``MaxConnectionsError``,
    "Too many connections": its pool holds 100 connections and does not wait for a free one)."""
    counts: dict[str, tuple[int, int]] = {}
    for variant, servers in started.items():
        logs = [s.log_path.read_text(errors="replace") for s in servers]
        dropped = sum(int(m.group(1)) for text in logs for m in OVER_CAPACITY.finditer(text))
        # one line per failure: ours "... (network:MaxConnectionsError)", Channels' "Exception inside application: ..."
        pool = sum(
            text.count("MaxConnectionsError)") + text.count("Exception inside application: Too many connections")
            for text in logs
        )
        counts[variant] = (dropped, pool)
    return counts
