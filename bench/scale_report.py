"""The ``--scale`` part of a run: its section of ``results.md`` and ``scale.png``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .report import LABELS, SHORT, _num, _table

STORM_KEYS = ("storm", "storm_backlog")
#: Server-log counts shown beside a chat variant's losses.
POOL_NOTES = (
    ("dropped_over_capacity", "messages channels-redis dropped over capacity"),
    ("redis_pool_exhausted", "layer calls failed: Redis pool exhausted"),
)


def _err(r: Any, section: Any = None) -> str | None:
    """Why a variant has no figures: its own error, its whole workload's error, or "not run"."""
    if isinstance(r, dict):
        return _reason(r) if "error" in r else None
    if isinstance(section, dict) and "error" in section:
        return f"workload failed: {section['error']}"
    return "not run"


def _reason(r: dict[str, Any]) -> str:
    """An error with what the client and the servers' logs saw about it."""
    parts = [str(r["error"])]
    if r.get("members_missing") is not None:
        parts.append(
            f"{r['members_missing']:,} members never got a warm-up broadcast, "
            f"{r.get('connections_closed', 0):,} of their connections closed"
        )
    if r.get("dropped_over_capacity"):
        parts.append(
            f"channels-redis dropped {r['dropped_over_capacity']:,} channel messages over capacity "
            '(its log: "channels over capacity in group")'
        )
    return "; ".join(parts)


def _ok(section: dict[str, Any], name: str) -> bool:
    return isinstance(section.get(name), dict) and "error" not in section[name]


def scale_markdown(scale: dict[str, Any]) -> list[str]:
    """The ``--scale`` section of ``results.md``."""
    plan = scale.get("plan", {})
    seconds = scale.get("seconds") or {}
    lines = [
        "",
        "## Scale (`--scale`)",
        "",
        "Measured after the workloads above, in the same run; targets one after the other (a client "
        "process holds one target's connections at a time). Redis runs use a private `redis-server` on "
        "127.0.0.1 started for the run, so that `INFO commandstats` counts this run's commands only. "
        "Servers are started as a user starts them (`daphne -b 127.0.0.1 -p PORT`, so Twisted's listen "
        "backlog of 50) except in the second reconnect storm. Plot: [`scale.png`](scale.png).",
    ]
    if seconds:
        lines += [
            "",
            f"Wall time of the scale part: {sum(seconds.values()):,.0f} s ("
            + ", ".join(f"{k} {v:,.0f} s" for k, v in seconds.items())
            + "; servers' start and stop included).",
        ]
    lines += _idle(scale, plan) + _cluster(scale, plan) + _chat(scale, plan) + _storm(scale, plan)
    return lines


def _idle(scale: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### {plan.get('idle_clients', 0):,} idle connections on one daphne process (in-memory layer)",
        "",
        "Every client in one room. RSS per connection: the server's RSS growth over the connections. Opened: "
        f"seconds to open them all, {plan.get('concurrency')} handshakes at a time. "
        f"Until last: {plan.get('samples')} broadcasts one at a time, time until the last client has it. "
        f"Sustained: {plan.get('window')} broadcasts in flight for {plan.get('slice')} s. Lost: broadcasts "
        f"that had not reached every client after {plan.get('limit')} s (the in-memory layer drops a message "
        "a consumer has not read within its `expiry`, 60 s).",
        "",
    ]
    idle = scale.get("idle") or {}
    rows = []
    for name in ("ravyn", "ref", "listloop"):
        r = idle.get(name)
        if _err(r, idle):
            rows.append([LABELS[name], _err(r, idle) or "", "", "", "", "", "", ""])
            continue
        assert isinstance(r, dict)
        rows.append([
            LABELS[name], _num(r.get("kib_per_conn"), 1), _num(r.get("rss_mib"), 0), _num(r.get("open_s"), 1),
            _num(r.get("until_last_p50_ms"), 1), _num(r.get("until_last_p99_ms"), 1),
            _num(r.get("broadcasts_per_s"), 2), _num(r.get("lost")),
        ])  # fmt: skip
    head = ["variant", "KiB / connection", "RSS MiB", "opened s", "until last p50 ms", "p99 ms", "broadcasts/s",
            "lost"]  # fmt: skip
    return lines + _table(head, rows) + _retried(idle, ("ravyn", "ref", "listloop"))


def _retried(section: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    """Which handshakes the client had to retry while opening the connections (none: no line)."""
    parts = []
    for name in names:
        r = section.get(name)
        retried = r.get("open_retried") if isinstance(r, dict) else None
        if retried:
            kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(retried.items(), key=lambda kv: -kv[1]))
            parts.append(f"{SHORT[name]}: {kinds}")
    if not parts:
        return []
    return ["", "Connection attempts retried while opening (each connection up to 20 attempts): " + "; ".join(parts)]


def _cluster(scale: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    section = scale.get("cluster") or {}
    cluster = section.get("ravyn")
    lines = [
        "",
        f"### {plan.get('procs')} daphne processes on `RedisChannelLayer`, {plan.get('cluster_clients', 0):,} "
        "clients in one room (ravyn_channels)",
        "",
    ]
    if _err(cluster, section):
        return [*lines, f"Not measured: {_err(cluster, section)}", *_retried(section, ("ravyn",))]
    assert isinstance(cluster, dict)
    calls = cluster.get("redis_calls", {})
    count = cluster.get("broadcasts_counted") or 0
    per = {k: v / count for k, v in calls.items()} if count else {}
    lines += _table(
        ["until last p50 ms", "p99 ms", "broadcasts/s", f"RSS per connection KiB ({plan.get('procs')} processes)",
         "opened s", "layer messages per broadcast", "Redis commands per broadcast"],
        [[_num(cluster.get("until_last_p50_ms"), 1), _num(cluster.get("until_last_p99_ms"), 1),
          _num(cluster.get("broadcasts_per_s"), 2), _num(cluster.get("kib_per_conn"), 1),
          _num(cluster.get("open_s"), 1), _num((per.get("zadd") or 0) / 2, 2), _num(sum(per.values()), 2)]],
    )  # fmt: skip
    return [
        *lines,
        "",
        "Layer messages: `ZADD` calls ÷ 2 (`RedisChannelLayer` adds a message to the channel's sorted set "
        "inside its `EVAL`ed `group_send` script, and again to a backup set when a process reads it); one per "
        "process is the design. Redis commands per broadcast: "
        + ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items()))
        + ".",
        *_retried(section, ("ravyn",)),
    ]


def _chat(scale: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    chat = scale.get("chat") or {}
    lines = [
        "",
        f"### Chat-shaped: {plan.get('chat_rooms', 0):,} rooms of {plan.get('chat_members')} over "
        f"{plan.get('procs')} daphne processes (`RedisChannelLayer`)",
        "",
        "Members of a room spread over the processes (and so do the senders); every room's first member "
        f"sends, one message in flight per room, for {plan.get('slice')} s. Latency: until the room's last member "
        "has it. A message that has not reached every member within 30 s is lost, and its room stops sending: "
        "the rates count the rooms that did not lose one. Before "
        "measuring, every room must have delivered a warm-up broadcast to all its members within "
        f"{plan.get('limit')} s (re-sent every 5 s, 100 rooms at a time).",
        "",
    ]
    rows = []
    for name in ("ravyn", "ref"):
        r = chat.get(name)
        if _err(r, chat):
            rows.append([LABELS[name], f"not measured: {_err(r, chat)}", "", "", "", "", ""])
            continue
        assert isinstance(r, dict)
        rows.append([
            LABELS[name], _num(r.get("deliveries_per_s")), _num(r.get("messages_per_s")), _num(r.get("p50_ms"), 1),
            _num(r.get("p99_ms"), 1), _num(r.get("cpu_ms_per_message"), 2),
            f"{_num(r.get('lost'))} / {_num(plan.get('chat_rooms'))}"
            + "".join(f"; {_num(r[k])} {what}" for k, what in POOL_NOTES if r.get(k)),
        ])  # fmt: skip
    lines += _table(["variant", "deliveries/s", "messages/s", "p50 ms", "p99 ms", "server CPU ms per message",
                     "rooms that lost a message"], rows)  # fmt: skip
    lines += _retried(chat, ("ravyn", "ref"))
    return [
        *lines,
        "",
        "The hand-written consumer uses channels-redis as its documentation shows it: `capacity` 100. On "
        "`RedisChannelLayer` every consumer of a process receives through one Redis key (the process's "
        "`specific.` channel), and the capacity applies to that key: once 100 messages wait for a process's "
        "consumers, `group_send` drops the rest (logged at INFO, counted above from the servers' logs). "
        "ravyn_channels sends a room's message once per process, on a process channel of capacity 10,000 "
        "(`PROCESS_CHANNEL_CAPACITY`). Both go through channels-redis's redis-py connection pool, which redis-py 8 "
        'caps at 100 connections per process, raising `MaxConnectionsError` ("Too many connections") instead of '
        "waiting when more layer calls are in flight; ravyn_channels, installed in every variant's settings, gives "
        "`RedisChannelLayer` hosts `max_connections` 2,000 at start-up (`MAX_CONNECTIONS`), so a loss from the pool "
        "would show in the servers' logs, counted above with the capacity drops, warm-up included.",
    ]


def _storm(scale: dict[str, Any], plan: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### Reconnect storm: {plan.get('storm_clients', 0):,} clients (rooms of {plan.get('storm_members')}) "
        "reconnect at once after a daphne restart (ravyn_channels, `RedisChannelLayer`)",
        "",
    ]
    rows = []
    for key in STORM_KEYS:
        storm = scale.get(key)
        if key not in scale:
            continue
        if _err(storm):
            rows.append([key, f"not measured: {_err(storm)}"] + [""] * 9)
            continue
        assert isinstance(storm, dict)
        failures = storm.get("failures") or {}
        overflows = storm.get("listen_overflows") or {}
        rows.append([
            _num(storm.get("backlog")), _num(storm.get("listening_s"), 2), _num(storm.get("connected_s"), 2),
            _num(storm.get("all_back_s"), 2), f"{_num(storm.get('clients_back'))} / {_num(storm.get('clients'))}",
            f"{storm.get('rooms_back')} / {storm.get('rooms')}",
            f"{_num(storm.get('refused'))} / {_num(storm.get('attempts'))}",
            ", ".join(f"{k} {v:,}" for k, v in sorted(failures.items(), key=lambda kv: -kv[1])) or "none",
            f"{_num(storm.get('connect_p50_s'), 2)} / {_num(storm.get('connect_p99_s'), 2)} / "
            f"{_num(storm.get('connect_max_s'), 2)}",
            _num(overflows.get("ListenOverflows")), _num(storm.get("redis_calls_per_reconnect"), 2),
        ])  # fmt: skip
    lines += _table(
        ["listen backlog", "new process listening s", "all connected s", "all back in their rooms s", "clients back",
         "rooms back",
         "failed / attempts", "failed attempts by kind", "connect p50 / p99 / max s", "listen queue overflows",
         "Redis commands per reconnect"],
        rows,
    )  # fmt: skip
    storm = scale.get("storm")
    bound = storm.get("bound_s") if isinstance(storm, dict) else None
    calls = storm.get("redis_calls", {}) if isinstance(storm, dict) else {}
    n = (storm.get("clients") if isinstance(storm, dict) else None) or 1
    return [
        *lines,
        "",
        "Times from the new process's start. Every client tries at once, and after a failure waits "
        + (
            "as the project's JavaScript clients do (0.5 s doubling to 30 s, half of it random)"
            if isinstance(storm, dict) and storm.get("backoff")
            else "0.2 s"
        )
        + ", with no client-side limit on concurrent attempts, and gives up "
        f'{_num(bound, 0)} s after the restart ("clients back": those connected by then; "all connected": '
        "when the last one did, or gave up). `ConnectionRefusedError`: nothing listens on the port yet (the new "
        "process is still importing and setting Django up), the honest behaviour of a restart. `TimeoutError`: "
        "no answer to the WebSocket handshake within 30 s of the TCP connection, or no TCP connection within "
        "60 s: the server is still busy with the connections ahead of it. `HTTP 403`: daphne refuses an upgrade "
        "its application has not accepted within `--websocket_connect_timeout` (5 s by default). "
        "`ConnectionError`: the server dropped the connection before answering the upgrade (autobahn's "
        "opening-handshake timeout, which daphne sets from the same `--websocket_connect_timeout`; or "
        "ravyn_channels' `HANDSHAKE_TIMEOUT`, 5 s from the TCP accept to a complete request head, whose "
        "closes the server log counts, given after the table). A connection "
        "attempt "
        "that arrives while the listen queue (backlog) is full is not refused: Linux drops its packet (the SYN, "
        "or the handshake's last ACK) and it is sent again after about 1, 3, 7, 15 s, which shows as connect "
        "times of whole seconds. "
        "Listen queue overflows: the kernel's `TcpExt: ListenOverflows` over the storm, machine-wide (other "
        "processes on the machine count too). The larger backlog is daphne's `-e "
        "tcp:port=PORT:interface=ADDR:backlog=4096` (Linux caps it at `net.core.somaxconn`).",
        "",
        '"Back in their rooms": a broadcast in every room reached all its members'
        + "".join(
            f" (backlog {_num(scale[k].get('backlog'))}: {_num(scale[k].get('members_missing'))} connected members "
            f"of the rooms not back never got it, {_num(scale[k].get('missing_closed'))} of them closed)"
            for k in STORM_KEYS
            if _ok(scale, k) and scale[k].get("members_missing")
        )
        + ". Connections ravyn_channels closed for `HANDSHAKE_TIMEOUT` (server log): "
        + (
            ", ".join(
                f"backlog {_num(scale[k].get('backlog'))}: {_num(scale[k].get('closed_for_handshake_timeout'))}"
                for k in STORM_KEYS
                if _ok(scale, k)
            )
            or "—"
        )
        + ". Redis commands from the restart to then, per reconnecting client (listen backlog 50): "
        + (", ".join(f"{k} {v / n:.2f}" for k, v in sorted(calls.items(), key=lambda kv: -kv[1])[:8]) or "—")
        + ".",
    ]


def _not_measured(ax: Any, names: list[str]) -> None:
    if names:
        ax.set_xlabel(", ".join(SHORT[x] for x in names) + ": not measured (see results.md)", fontsize=8)


def plot_scale(scale: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"ref": "#9e9e9e", "listloop": "#8172b2", "ravyn": "#dd8452"}
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.8))
    idle = scale.get("idle") or {}
    names = [n for n in ("ravyn", "ref", "listloop") if _ok(idle, n)]
    n = (scale.get("plan") or {}).get("idle_clients", 0)
    ax = axes[0]
    for i, name in enumerate(names):
        r = idle[name]
        ax.bar([i - 0.2], [r.get("until_last_p50_ms") or 0], 0.4, color=colors[name])
        ax.bar([i + 0.2], [r.get("until_last_p99_ms") or 0], 0.4, color=colors[name], alpha=0.5, hatch="//")
    ax.set_xticks(range(len(names)), [SHORT[x] for x in names])
    ax.set_yscale("log")
    ax.set_title(f"{n:,} connections, one daphne:\nbroadcast until last (p50, p99 hatched)", fontsize=9)
    ax.set_ylabel("ms (log)")
    ax = axes[1]
    ax.bar(range(len(names)), [idle[x].get("kib_per_conn") or 0 for x in names], color=[colors[x] for x in names])
    ax.set_xticks(range(len(names)), [SHORT[x] for x in names])
    ax.set_title(f"server RSS per idle connection ({n:,})", fontsize=9)
    for ax in axes[:2]:
        _not_measured(ax, [x for x in ("ravyn", "ref", "listloop") if x not in names])
    ax.set_ylabel("KiB")
    chat = scale.get("chat") or {}
    plan = scale.get("plan") or {}
    ax = axes[2]
    cn = [x for x in ("ravyn", "ref") if _ok(chat, x)]
    ax.bar(range(len(cn)), [chat[x].get("deliveries_per_s") or 0 for x in cn], color=[colors[x] for x in cn])
    ax.set_xticks(range(len(cn)), [SHORT[x] for x in cn])
    _not_measured(ax, [x for x in ("ravyn", "ref") if x not in cn])
    ax.set_title(
        f"chat: {plan.get('chat_rooms', 0):,} rooms of {plan.get('chat_members')} over {plan.get('procs')} "
        "processes,\ndeliveries/s",
        fontsize=9,
    )
    ax = axes[3]
    storms = [(k, scale[k]) for k in STORM_KEYS if _ok(scale, k)]
    phases = (("listening_s", "new process listening"), ("connected_s", "all connected"),
              ("all_back_s", "all back in rooms"))  # fmt: skip
    for j, (key, label) in enumerate(phases):
        xs = [i + (j - 1) * 0.27 for i in range(len(storms))]
        ax.bar(xs, [s.get(key) or 0 for _, s in storms], 0.27, label=label, color=("#c8c8c8", "#4c72b0", "#dd8452")[j])
    ax.set_xticks(range(len(storms)), [f"backlog {s.get('backlog')}" for _, s in storms])
    ax.set_title(f"reconnect storm: {plan.get('storm_clients', 0):,} clients after a restart", fontsize=9)
    ax.set_ylabel("s since the new process started")
    ax.legend(fontsize=7)
    fig.suptitle(f"ravyn_channels at scale — {meta['date']}, {meta['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
