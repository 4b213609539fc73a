"""Turn a run's figures into ``results.md`` (tables + goal ratios) and ``results.png``."""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .servers import ROOT, cpus

PACKAGES = (
    "Django", "channels", "daphne", "channels-redis", "redis", "Twisted", "autobahn",
    "uvicorn", "uvloop", "websockets", "picows",
)  # fmt: skip

LABELS = {
    "ref": "hand-written Channels consumer (ref)",
    "raw": "raw ASGI app (limit)",
    "ravyn": "ravyn_channels",
    "listloop": "plain list loop over local sockets",
    "topics": "ravyn_channels topics (event + reply, topic broadcast)",
    "presence": "ravyn_channels, presence=True",
    "history": "ravyn_channels, history=HistoryConfig()",
    "metrics": "ravyn_channels, METRICS on",
}
X = "\N{MULTIPLICATION SIGN}"
SHORT = {
    "ref": "ref", "raw": "raw", "ravyn": "ravyn", "listloop": "list loop", "topics": "topics", "presence": "presence",
    "history": "history", "metrics": "metrics",
}  # fmt: skip


# -- machine and versions -----------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU, memory, OS, Python, package versions, commit."""
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{mem_kb / 2**20:.0f} GiB"
    except (OSError, ValueError, IndexError):
        memory = "?"
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "-"
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "?"
    server_cpus, client_cpu = cpus()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
        "commit": commit,
        "pinning": f"servers on core {server_cpus}, client on core {client_cpu}" if server_cpus else "none",
        "load": os.getloadavg(),
    }


# -- formatting ---------------------------------------------------------------------------


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def _ratio(a: Any, b: Any) -> float | None:
    if not a or not b or any(isinstance(x, float) and math.isnan(x) for x in (a, b)):
        return None
    return float(a) / float(b)


def _x(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}{X}"


def _ok(r: float | None, goal: float, higher: bool = True) -> str:
    if r is None:
        return "—"
    return "yes" if (r >= goal if higher else r <= goal) else "**no**"


def _get(results: dict[str, Any], *keys: str) -> Any:
    node: Any = results
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


# -- the tables ---------------------------------------------------------------------------


def goal_rows(results: dict[str, Any]) -> list[list[str]]:
    """One row per goal of the issue: what was measured, the ratio, the goal, met or not."""
    rows: list[list[str]] = []
    for server in ("daphne", "uvicorn"):
        echo = _get(results, "echo", server) or {}
        ref, raw, ours = echo.get("ref", {}), echo.get("raw", {}), echo.get("ravyn", {})
        r = _ratio(ours.get("msgs_per_s"), ref.get("msgs_per_s"))
        rows.append([server, "echo msgs/s vs ref", _x(r), f"≥ 2.0{X} (floor 1.0{X})", _ok(r, 2.0)])
        c = _ratio(ref.get("cpu_us_per_msg"), ours.get("cpu_us_per_msg"))
        rows.append([server, "echo server CPU per msg, ref ÷ ravyn", _x(c), f"≥ 2.0{X}", _ok(c, 2.0)])
        r = _ratio(ours.get("msgs_per_s"), raw.get("msgs_per_s"))
        rows.append([server, "echo msgs/s vs raw ASGI", _x(r), f"≥ 0.8{X}", _ok(r, 0.8)])
        r = _ratio(ours.get("p99_ms"), ref.get("p99_ms"))
        rows.append([server, "echo p99 latency vs ref", _x(r), f"≤ 1.0{X}", _ok(r, 1.0, higher=False)])
        hs = _get(results, "handshake", server) or {}
        r = _ratio(_get(hs, "ravyn", "handshakes_per_s"), _get(hs, "ref", "handshakes_per_s"))
        rows.append([server, "handshakes/s vs ref", _x(r), f"≥ 0.90{X}", _ok(r, 0.9)])
        mem = _get(results, "memory", server) or {}
        r = _ratio(_get(mem, "ravyn", "kib_per_conn"), _get(mem, "ref", "kib_per_conn"))
        rows.append([server, "memory per idle connection vs ref", _x(r), f"≤ 1.25{X}", _ok(r, 1.25, higher=False)])
        r = _ratio(_get(echo, "topics", "msgs_per_s"), ours.get("msgs_per_s"))
        rows.append([server, "topic event round trip (reply) msgs/s vs raw echo", _x(r), f"≥ 0.8{X}", _ok(r, 0.8)])
        if "metrics" in echo:
            r = _ratio(_get(echo, "metrics", "cpu_us_per_msg"), ours.get("cpu_us_per_msg"))
            rows.append([server, "echo server CPU per msg, metrics on ÷ off", _x(r), f"≤ 1.03{X}",
                         _ok(r, 1.03, higher=False)])  # fmt: skip
    for key in ("daphne/memory", "uvicorn/memory", "daphne/redis", "daphne/pubsub"):
        for n, by_variant in (_get(results, "fanout", key) or {}).items():
            if not isinstance(by_variant, dict):
                continue
            ours = _get(by_variant, "ravyn", "broadcasts_per_s")
            where = f"{key.replace('/', ', ')} layer, {n} clients"
            if "listloop" in by_variant:
                r = _ratio(ours, _get(by_variant, "listloop", "broadcasts_per_s"))
                rows.append([where, "fan-out broadcasts/s (sustained) vs list loop", _x(r), f"≥ 0.8{X}", _ok(r, 0.8)])
                r = _ratio(
                    _get(by_variant, "listloop", "cpu_ms_per_broadcast_one"),
                    _get(by_variant, "ravyn", "cpu_ms_per_broadcast_one"),
                )
                rows.append(
                    [where, "fan-out server CPU per broadcast (one at a time), list loop ÷ ravyn", _x(r), f"≥ 0.8{X}",
                     _ok(r, 0.8)]
                )  # fmt: skip
            if "listloop" in by_variant:
                cpu_ours = _get(by_variant, "ravyn", "cpu_ms_per_broadcast")
                r = _ratio(_get(by_variant, "listloop", "cpu_ms_per_broadcast"), cpu_ours)
                rows.append([where, "fan-out server CPU per broadcast (sustained), list loop ÷ ravyn", _x(r),
                             f"≥ 0.8{X}", _ok(r, 0.8)])  # fmt: skip
            r = _ratio(ours, _get(by_variant, "ref", "broadcasts_per_s"))
            rows.append([where, "fan-out broadcasts/s vs ref group_send", _x(r), f"≥ 10{X}", _ok(r, 10.0)])
            r = _ratio(
                _get(by_variant, "ref", "cpu_ms_per_broadcast"), _get(by_variant, "ravyn", "cpu_ms_per_broadcast")
            )
            rows.append([where, "fan-out server CPU per broadcast (sustained), ref ÷ ravyn", _x(r), f"≥ 10{X}",
                         _ok(r, 10.0)])  # fmt: skip
            if "presence" in by_variant:
                r = _ratio(
                    _get(by_variant, "presence", "cpu_ms_per_broadcast"),
                    _get(by_variant, "ravyn", "cpu_ms_per_broadcast"),
                )
                rows.append([where, "broadcast server CPU, presence on ÷ off (sustained)", _x(r), f"≤ 1.05{X}",
                             _ok(r, 1.05, higher=False)])  # fmt: skip
            if "topics" in by_variant:
                r = _ratio(_get(by_variant, "topics", "broadcasts_per_s"), ours)
                rows.append([where, "topic broadcasts/s vs manager broadcast", _x(r), f"≥ 0.9{X}", _ok(r, 0.9)])
            if "history" in by_variant:
                r = _ratio(_get(by_variant, "history", "broadcasts_per_s"), ours)
                rows.append([where, "broadcasts/s, history on ÷ off (sustained)", _x(r), f"≥ 0.85{X}", _ok(r, 0.85)])
            if "metrics" in by_variant:
                r = _ratio(
                    _get(by_variant, "metrics", "cpu_ms_per_broadcast"),
                    _get(by_variant, "ravyn", "cpu_ms_per_broadcast"),
                )
                rows.append([where, "broadcast server CPU, metrics on ÷ off (sustained)", _x(r), f"≤ 1.03{X}",
                             _ok(r, 1.03, higher=False)])  # fmt: skip
    for key, by_variant in (_get(results, "resume") or {}).items():
        # Server CPU: on a loaded machine the handler's wall time also counts its waits for a core.
        r = _get(by_variant, "history")
        ms = r.get("cpu_ms") if isinstance(r, dict) else None
        n = r.get("messages", 1000) if isinstance(r, dict) else 1000
        rows.append([f"{key.replace('/', ', ')} layer", f"resume of {n:,} missed messages, server CPU ms",
                     _num(ms, 1) + " ms" if ms is not None else "—", "< 50 ms",
                     "—" if ms is None else "yes" if ms < 50 else "**no**"])  # fmt: skip
    return rows


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def markdown(results: dict[str, Any], meta: dict[str, Any], plan: Any) -> str:
    v = meta["versions"]
    lines = [
        "# Benchmarks: ravyn_channels side by side with a hand-written consumer",
        "",
        f"Written by `python -m bench{' --quick' if plan.name == 'quick' else ''}` on {meta['date']} "
        f"({plan.name} run, commit `{meta['commit']}`).",
        "",
        f"- Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory']} RAM, {meta['os']}; "
        f"{meta['pinning']} (`taskset`).",
        f"- Load average at start {meta['load_start'][0]:.1f}, at end {meta['load'][0]:.1f} "
        "(a shared machine: variants are measured in interleaved slices, so load falls on all alike).",
        f"- Python {meta['python']}; Django {v['Django']}, channels {v['channels']}, daphne {v['daphne']} "
        f"(Twisted {v['Twisted']}, autobahn {v['autobahn']}), channels-redis {v['channels-redis']}, "
        f"redis-py {v['redis']}, uvicorn {v['uvicorn']} (uvloop {v['uvloop']}, websockets {v['websockets']}); "
        f"client picows {v['picows']}.",
        "- Variants: **ref** = hand-written `AsyncWebsocketConsumer` (Channels tutorial routing, "
        "`AllowedHostsOriginValidator`), **raw** = bare ASGI callable (no Django, the server's ceiling), "
        "**ravyn** = `@websocket` handlers + `ConnectionManager`, **list loop** = `@websocket` handlers "
        "with the seed's plain list manager, **topics** = a `TopicSocket` (ravyn.topics.v1): the echo is an "
        "event answered by a reply, the fan-out a topic broadcast (each frame a JSON envelope), the "
        "connection set-up includes the join. Same job, same server, same run.",
        '- "server CPU" is the CPU time the server process(es) used per operation: it does not depend '
        "on how much of the core other processes took, so its ratios are the steadier ones.",
        "",
        "## Goals",
        "",
        *_table(["where", "measure", "ratio", "goal", "met"], goal_rows(results)),
        "",
    ]
    echo = plan.echo
    lines += [
        f"## Echo: {echo['conns']} connections, {echo['size']}-byte text frames, request/response",
        "",
    ]
    rows = []
    for server, by_variant in results["echo"].items():
        for name in ("ref", "raw", "ravyn", "topics", "metrics"):
            if name == "metrics" and name not in by_variant:
                continue
            r = by_variant.get(name, {})
            rows.append([
                server, LABELS[name], _num(r.get("msgs_per_s")), _num(r.get("p50_ms"), 2), _num(r.get("p99_ms"), 2),
                _num(r.get("cpu_us_per_msg"), 1),
                _x(_ratio(r.get("msgs_per_s"), _get(by_variant, "ref", "msgs_per_s"))),
            ])  # fmt: skip
    lines += _table(["server", "variant", "msgs/s", "p50 ms", "p99 ms", "server CPU µs/msg", "vs ref"], rows)
    lines += ["", "## Connection set-up: connect, one echo, close", ""]
    rows = []
    for server, by_variant in results["handshake"].items():
        for name in ("ref", "raw", "ravyn", "topics"):
            r = by_variant.get(name, {})
            rows.append([
                server, LABELS[name], _num(r.get("handshakes_per_s")), _num(r.get("p50_ms"), 2),
                _num(r.get("p99_ms"), 2), _num(r.get("cpu_ms_per_handshake"), 2),
                _x(_ratio(r.get("handshakes_per_s"), _get(by_variant, "ref", "handshakes_per_s"))),
            ])  # fmt: skip
    lines += _table(["server", "variant", "handshakes/s", "p50 ms", "p99 ms", "server CPU ms each", "vs ref"], rows)
    lines += [
        "",
        f"## Memory: server RSS per idle connection ({plan.memory['conns']:,} connections)",
        "",
    ]
    rows = []
    for server, by_variant in results["memory"].items():
        for name in ("ref", "raw", "ravyn", "topics"):
            r = by_variant.get(name, {})
            rows.append([
                server, LABELS[name], _num(r.get("kib_per_conn"), 1), _num(r.get("rss_base_mib"), 1),
                _num(r.get("rss_mib"), 1),
                _x(_ratio(r.get("kib_per_conn"), _get(by_variant, "ref", "kib_per_conn"))),
            ])  # fmt: skip
    lines += _table(["server", "variant", "KiB / connection", "RSS before MiB", "RSS after MiB", "vs ref"], rows)
    fan = plan.fanout
    lines += [
        "",
        "## Broadcast fan-out: every client in one room, one client triggers the broadcasts",
        "",
        'Two phases per variant. One at a time: "until last" is the time from the trigger until the last '
        "client has the broadcast. Sustained: one sender keeps "
        f"{fan['window']} broadcasts in flight; completed broadcasts per second. Server CPU is summed over "
        "the server processes. Redis rows: two daphne processes, clients split between them, the trigger on "
        "the first.",
        "",
    ]
    rows = []
    for key, by_size in results["fanout"].items():
        if "skipped" in by_size:
            rows.append([key.replace("/", ", "), "—", by_size["skipped"], "", "", "", "", "", ""])
            continue
        for n, by_variant in by_size.items():
            for name in ("ref", "raw", "listloop", "ravyn", "topics", "presence", "history", "metrics"):
                r = by_variant.get(name)
                if r is None:
                    continue
                if "error" in r:
                    rows.append([key.replace("/", ", "), n, LABELS[name], r["error"], "", "", "", "", ""])
                    continue
                rows.append([
                    key.replace("/", ", "), n, LABELS[name], _num(r.get("until_last_p50_ms"), 1),
                    _num(r.get("until_last_p99_ms"), 1), _num(r.get("cpu_ms_per_broadcast_one"), 2),
                    _num(r.get("broadcasts_per_s"), 1), _num(r.get("cpu_ms_per_broadcast"), 2),
                    _x(_ratio(r.get("broadcasts_per_s"), _get(by_variant, "ref", "broadcasts_per_s")))
                    + (f" ({r['lost']} lost)" if r.get("lost") else ""),
                ])  # fmt: skip
    lines += _table(
        ["server, layer", "clients", "variant", "until last p50 ms", "p99 ms", "server CPU ms each",
         "sustained broadcasts/s", "server CPU ms each", "vs ref"],
        rows,
    )  # fmt: skip
    churn = results.get("churn") or {}
    if churn:
        lines += [
            "",
            "## Presence: connect, one broadcast, close, into a room (presence off and on)",
            "",
            "The connection set-up workload on `/fanout/churn`: every connection joins the room, broadcasts "
            "one message (its reply) and closes. With `presence=True` each join and leave is also written to the "
            "presence store (in memory, or Redis) and announced to the other processes. Broadcast cost with "
            "presence is in the fan-out table (**presence** rows) and the Goals.",
            "",
        ]
        rows = []
        for key, by_variant in churn.items():
            for name in ("ravyn", "presence"):
                r = by_variant.get(name, {})
                rows.append([
                    key.replace("/", ", "), LABELS[name], _num(r.get("handshakes_per_s")), _num(r.get("p50_ms"), 2),
                    _num(r.get("p99_ms"), 2), _num(r.get("cpu_ms_per_handshake"), 2),
                    _x(_ratio(r.get("cpu_ms_per_handshake"), _get(by_variant, "ravyn", "cpu_ms_per_handshake"))),
                ])  # fmt: skip
        lines += _table(["server, layer", "variant", "cycles/s", "p50 ms", "p99 ms", "server CPU ms each",
                         "CPU vs presence off"], rows)  # fmt: skip
    from .costs import costs_markdown

    lines += costs_markdown(results, plan)
    if "scale" in results:
        from .scale_report import scale_markdown

        lines += scale_markdown(results["scale"])
    if plan.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"


# -- the plot -----------------------------------------------------------------------------


def plot(results: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {
        "ref": "#9e9e9e", "raw": "#4c72b0", "listloop": "#8172b2", "ravyn": "#dd8452", "topics": "#55a868",
        "presence": "#c44e52",
    }  # fmt: skip
    fig, axes = plt.subplots(2, 2, figsize=(13, 9))

    def bars(
        ax: Any, groups: list[str], series: dict[str, list[float]], title: str, unit: str, log: bool = False
    ) -> None:
        width = 0.8 / max(1, len(series))
        for i, (name, values) in enumerate(series.items()):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, [v if v and not math.isnan(v) else 0 for v in values], width, label=SHORT[name],
                   color=colors[name])  # fmt: skip
        ax.set_xticks(range(len(groups)), groups)
        ax.set_title(title)
        ax.set_ylabel(unit)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    servers = list(results["echo"])
    variants = ["ref", "raw", "ravyn", "topics"]
    bars(axes[0][0], servers, {v: [_get(results, "echo", s, v, "msgs_per_s") or 0 for s in servers] for v in variants},
         "Echo, 50 connections", "messages / s")  # fmt: skip
    bars(axes[0][1], servers,
         {v: [_get(results, "handshake", s, v, "handshakes_per_s") or 0 for s in servers] for v in variants},
         "Connect + one echo + close", "handshakes / s")  # fmt: skip
    bars(axes[1][0], list(results["memory"]),
         {v: [_get(results, "memory", s, v, "kib_per_conn") or 0 for s in results["memory"]] for v in variants},
         "Server memory per idle connection (1,000)", "KiB")  # fmt: skip
    groups: list[str] = []
    series: dict[str, list[float]] = {v: [] for v in ("ref", "raw", "listloop", "ravyn", "topics", "presence")}
    for key, by_size in results["fanout"].items():
        if "skipped" in by_size:
            continue
        for n, by_variant in by_size.items():
            groups.append(f"{key.replace('/', chr(10))}\n{n}")
            for v in series:
                series[v].append(_get(by_variant, v, "broadcasts_per_s") or 0)
    bars(axes[1][1], groups, series, "Broadcast fan-out, sustained", "broadcasts / s (log)", log=True)
    axes[1][1].tick_params(axis="x", labelsize=7)
    fig.suptitle(
        f"ravyn_channels vs hand-written Channels consumer vs raw ASGI — {meta['date']}, "
        f"{meta['cpu']}, {meta['pinning']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
