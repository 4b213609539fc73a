"""The benchmark run: which servers, which workloads, in which order.

Every variant of a workload is measured in the same client process, in
interleaved slices, against servers started side by side; a shared or noisy
machine then slows every variant alike. Servers are started fresh for each
server kind and layer, and memory is measured first, on fresh processes.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .servers import Server, run_client

ECHO_VARIANTS = ("ref", "raw", "ravyn", "topics")
FANOUT_VARIANTS = ("ref", "raw", "listloop", "ravyn", "topics", "presence")
REDIS_VARIANTS = ("ref", "ravyn", "topics", "presence")
#: Connect + one message + close into a room: what presence adds to a connection's life.
CHURN_VARIANTS = ("ravyn", "presence")
#: On daphne only (what they add does not depend on the server): ``ravyn`` with prometheus metrics
#: on (echo and fan-out), and with room history (fan-out, and the resume of missed messages).
METRICS_VARIANT, HISTORY_VARIANT = "metrics", "history"
#: Redis layers on which history is measured (``RedisChannelLayer``: its store is the same on pub/sub).
HISTORY_LAYERS = ("redis",)


def variant_path(variant: str, path: str) -> str:
    """The URL path of a workload for a variant: the topics variant joins a topic on its one socket."""
    if variant != "topics":
        return path
    if path == "/echo":
        return "/live?topic=echo&event=echo&ref=1"
    return f"/live?topic=room:{path.rsplit('/', 1)[-1]}&event=b"


@dataclass
class Plan:
    """How long and how often each workload runs."""

    name: str
    echo: dict[str, Any]
    handshake: dict[str, Any]
    memory: dict[str, Any]
    fanout: dict[str, Any]
    resume: dict[str, Any]
    sizes: tuple[int, ...] = (100, 1000)
    servers: tuple[str, ...] = ("daphne", "uvicorn")
    redis_layers: tuple[str, ...] = ("redis", "pubsub")
    notes: list[str] = field(default_factory=list)
    #: ``--scale``: also the scale workloads (``bench/scale.py``), counts times this fraction.
    scale: float | None = None
    #: ``--only fanout``: that workload alone, on the in-memory layer (for trying a change).
    only: str | None = None
    fanout_variants: tuple[str, ...] = FANOUT_VARIANTS


FULL = Plan(
    name="full",
    echo={"conns": 50, "size": 32, "warmup": 0.3, "slice": 2.0, "rounds": 8},
    handshake={"workers": 8, "warmup": 0.3, "slice": 2.0, "rounds": 10},
    memory={"base": 50, "conns": 1000, "settle": 1.0},
    fanout={"slice": 2.0, "rounds": 3, "min_samples": 5, "window": 8},
    resume={"messages": 1000, "size": 200, "rounds": 7},
)

QUICK = Plan(
    name="quick",
    echo={"conns": 50, "size": 32, "warmup": 0.2, "slice": 0.6, "rounds": 2},
    handshake={"workers": 8, "warmup": 0.2, "slice": 0.6, "rounds": 2},
    memory={"base": 50, "conns": 1000, "settle": 0.3},
    fanout={"slice": 0.4, "rounds": 1, "min_samples": 2, "window": 8},
    resume={"messages": 1000, "size": 200, "rounds": 3},
)


def redis_available(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Runner:
    """Runs a plan and collects every figure in ``self.results``."""

    def __init__(self, plan: Plan, log: Any = print):
        self.plan = plan
        self.log = log
        self.logdir = Path(tempfile.mkdtemp(prefix="ravyn-bench-"))
        self.prefix = f"bench-{os.getpid()}-"  # a key prefix no other run shares
        self.results: dict[str, Any] = {
            "echo": {}, "handshake": {}, "memory": {}, "fanout": {}, "churn": {}, "resume": {},
        }  # fmt: skip

    def _start(
        self, variants: tuple[str, ...], server: str, layer: str, copies: int = 1, backlog: int | None = None
    ) -> dict[str, list[Server]]:
        started: dict[str, list[Server]] = {}
        try:
            for v in variants:
                started[v] = [
                    Server(v, server, layer, f"{self.prefix}{v}", self.logdir, backlog=backlog) for _ in range(copies)
                ]
            for group in started.values():
                for s in group:
                    s.wait_ready()
        except BaseException:
            self._stop(started)
            raise
        return started

    @staticmethod
    def _stop(started: dict[str, list[Server]]) -> None:
        for group in started.values():
            for s in group:
                s.stop()

    @staticmethod
    def _targets(started: dict[str, list[Server]], path: str, variants: tuple[str, ...]) -> dict[str, Any]:
        return {
            v: {"urls": [s.url(variant_path(v, path)) for s in started[v]], "pids": [s.pid for s in started[v]]}
            for v in variants
        }

    def _client(self, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
        t = time.monotonic()
        result = run_client(spec, timeout)
        self.log(f"    {spec['workload']} done in {time.monotonic() - t:.0f} s")
        if "error" in result:
            self.log(f"    ERROR: {result['error']}")
        return result

    def run(self) -> dict[str, Any]:
        plan = self.plan
        for server in plan.servers:
            variants = plan.fanout_variants
            if server == "daphne" and plan.only is None:
                variants += (METRICS_VARIANT, HISTORY_VARIANT)
            self.log(f"[{server}] in-memory layer: {', '.join(variants)}")
            started = self._start(variants, server, "memory")
            try:
                if plan.only == "fanout":
                    self.results["fanout"][f"{server}/memory"] = self._fanout(started, variants)
                else:
                    self._server_workloads(server, started)
            finally:
                self._stop(started)
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        for layer in plan.redis_layers:
            key = f"daphne/{layer}"
            if not redis_available(url):
                self.results["fanout"][key] = {"skipped": f"no Redis at {url}"}
                self.log(f"[daphne] {layer}: skipped, no Redis at {url}")
                continue
            variants = REDIS_VARIANTS + ((HISTORY_VARIANT,) if layer in HISTORY_LAYERS else ())
            self.log(f"[2 daphne processes] {layer} layer: {', '.join(variants)}")
            started = self._start(variants, "daphne", layer, copies=2)
            try:
                self.results["fanout"][key] = self._fanout(started, variants)
                self.results["churn"][key] = self._churn(started)
                if HISTORY_VARIANT in started:
                    self.results["resume"][key] = self._resume(started, url)
            finally:
                self._stop(started)
                self._forget_redis_keys(url)
        if plan.scale is not None:
            from .scale import ScalePlan, run_scale

            scale_plan = ScalePlan() if plan.scale >= 1 else ScalePlan().scaled(plan.scale)
            self.results["scale"] = run_scale(self, scale_plan)
        return self.results

    def _forget_redis_keys(self, url: str) -> None:
        """Delete this run's keys (its own prefix only): the hand-written consumers on
        ``RedisChannelLayer`` can leave group members behind when 1,000 of them close at once
        (redis-py's pool refuses some ``group_discard`` calls: "Too many connections")."""
        import redis

        client = redis.Redis.from_url(url)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
                self.log(f"    removed {len(keys)} Redis key(s) left under prefix {self.prefix}")
        finally:
            client.close()

    def _server_workloads(self, server: str, started: dict[str, list[Server]]) -> None:
        plan = self.plan
        targets = self._targets(started, "/echo", ECHO_VARIANTS)
        # Memory first, on fresh processes.
        self.results["memory"][server] = self._client({"workload": "memory", "targets": targets, **plan.memory}, 300)
        echo = ECHO_VARIANTS + tuple(v for v in (METRICS_VARIANT,) if v in started)
        echo_targets = self._targets(started, "/echo", echo)
        self.results["echo"][server] = self._client({"workload": "echo", "targets": echo_targets, **plan.echo}, 600)
        self.results["handshake"][server] = self._client(
            {"workload": "handshake", "targets": targets, **plan.handshake}, 600
        )
        self.results["fanout"][f"{server}/memory"] = self._fanout(started, tuple(started))
        self.results["churn"][f"{server}/memory"] = self._churn(started)
        if HISTORY_VARIANT in started:
            self.results["resume"][f"{server}/memory"] = self._resume(started, None)

    def _resume(self, started: dict[str, list[Server]], redis_url: str | None) -> dict[str, Any]:
        """Resume of ``messages`` missed messages in a room with history; with Redis, what the room's
        stream and meta hash take in Redis once it holds them."""
        targets = self._targets(started, "/fanout/", (HISTORY_VARIANT,))
        result = self._client({"workload": "resume", "targets": targets, **self.plan.resume}, 600)
        found = result.get(HISTORY_VARIANT)
        if redis_url and isinstance(found, dict) and "room" in found:
            found["redis_bytes"] = self._redis_bytes(redis_url, started[HISTORY_VARIANT][0], found["room"])
        return result

    @staticmethod
    def _redis_bytes(url: str, server: Server, room: str) -> int:
        """``MEMORY USAGE`` of ``room``'s history keys (stream + meta hash) on the ``history`` server."""
        import redis

        from ravyn_channels.rooms import group_name

        base = f"{server.env['BENCH_PREFIX']}:history:{group_name(room, 'bench-history')}"  # apps/history.py
        client = redis.Redis.from_url(url)
        try:
            return sum(int(client.memory_usage(key, samples=0) or 0) for key in (base, f"{base}:meta"))
        finally:
            client.close()

    def _churn(self, started: dict[str, list[Server]]) -> dict[str, Any]:
        """The handshake workload (connect, one message, close) into a room, presence off and on."""
        targets = self._targets(started, "/fanout/churn", CHURN_VARIANTS)
        return self._client({"workload": "handshake", "targets": targets, **self.plan.handshake}, 600)

    def _fanout(self, started: dict[str, list[Server]], variants: tuple[str, ...]) -> dict[str, Any]:
        by_size: dict[str, Any] = {}
        for n in self.plan.sizes:
            targets = self._targets(started, f"/fanout/room{n}", variants)
            spec = {"workload": "fanout", "targets": targets, "clients": n, **self.plan.fanout}
            by_size[str(n)] = self._client(spec, 900)
        return by_size


def fanout_summary(results: dict[str, Any], meta: dict[str, Any]) -> str:
    """A short table of an ``--only fanout`` run: every variant, and its ratio to the list loop."""
    lines = [
        f"# Fan-out only (`--only fanout`), {meta.get('date', '?')}, commit `{meta.get('commit', '?')}`, "
        f"load {meta.get('load_start', (0,))[0]:.1f}",
        "",
        "| server | clients | variant | until last p50 ms | p99 ms | CPU ms (one) | broadcasts/s | slices "
        "| CPU ms (sustained) | server, client CPU share | /s vs list loop | CPU list loop ÷ this |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, by_size in results["fanout"].items():
        for size, variants in by_size.items():
            base = variants.get("listloop", {})
            for name, r in variants.items():
                if "error" in r:
                    lines.append(f"| {key} | {size} | {name} | error: {r['error']} |")
                    continue
                rate = r["broadcasts_per_s"] / base["broadcasts_per_s"] if base.get("broadcasts_per_s") else 0.0
                cpu = base["cpu_ms_per_broadcast"] / r["cpu_ms_per_broadcast"] if "cpu_ms_per_broadcast" in base else 0
                lines.append(
                    f"| {key} | {size} | {name} | {r['until_last_p50_ms']:.1f} | {r['until_last_p99_ms']:.1f} "
                    f"| {r['cpu_ms_per_broadcast_one']:.2f} | {r['broadcasts_per_s']:.1f} | {r['slices']} "
                    f"| {r['cpu_ms_per_broadcast']:.2f} "
                    f"| {r['server_cpu_share']:.0%}, {r.get('client_cpu_share', 0):.0%} | {rate:.2f}x | {cpu:.2f}x |"
                )
    return "\n".join(lines) + "\n"
