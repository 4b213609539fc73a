"""The README's performance table, written by ``python -m bench`` from the run it just made.

The table sits between ``<!-- bench:readme:start -->`` and ``<!-- bench:readme:end -->`` in
README.md; a full run (``python -m bench`` writing into ``bench/``) replaces it, so a figure in
the README cannot outlive the run it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .report import _get, _num, _ratio, _x

START, END = "<!-- bench:readme:start -->", "<!-- bench:readme:end -->"


def _pair(results: dict[str, Any], key: str, metric: str, over: str, under: str) -> str:
    """``a / b``: the ratio ``over ÷ under`` of ``metric`` at 100 and at 1,000 clients."""
    cells = []
    for n in ("100", "1000"):
        by_variant = _get(results, "fanout", key, n) or {}
        cells.append(_x(_ratio(_get(by_variant, over, metric), _get(by_variant, under, metric))))
    return " / ".join(cells)


def readme_block(results: dict[str, Any], meta: dict[str, Any]) -> str:
    """The Markdown between the markers: headline ratios, and what to expect per process at scale."""
    echo = _get(results, "echo", "daphne") or {}
    memory = _get(results, "memory", "daphne") or {}
    cpu = "cpu_ms_per_broadcast"
    rows = [
        ("echo, server CPU per message, hand-written ÷ ravyn_channels",
         _x(_ratio(_get(echo, "ref", "cpu_us_per_msg"), _get(echo, "ravyn", "cpu_us_per_msg")))),
        ("broadcast to a room in memory, server CPU per broadcast vs `group_send` (100 / 1,000 clients)",
         _pair(results, "daphne/memory", cpu, "ref", "ravyn")),
        ("the same across two processes on the Redis pub/sub layer (100 / 1,000 clients)",
         _pair(results, "daphne/pubsub", cpu, "ref", "ravyn")),
        ("sustained broadcasts/s vs the seed's plain list loop, in memory (100 / 1,000 clients)",
         _pair(results, "daphne/memory", "broadcasts_per_s", "ravyn", "listloop")),
        ("memory per idle connection, ravyn_channels ÷ hand-written",
         _x(_ratio(_get(memory, "ravyn", "kib_per_conn"), _get(memory, "ref", "kib_per_conn")))),
    ]  # fmt: skip
    idle = _get(results, "scale", "idle", "ravyn")
    if isinstance(idle, dict) and idle.get("kib_per_conn"):
        rows.append((
            f"{_num(idle.get('clients') or 10000)} idle connections on one daphne process: KiB each; "
            "a broadcast to all of them, until the last has it (p50)",
            f"{_num(idle.get('kib_per_conn'), 1)} KiB; {_num(idle.get('until_last_p50_ms'))} ms",
        ))  # fmt: skip
    cluster = _get(results, "scale", "cluster", "ravyn")
    if isinstance(cluster, dict) and cluster.get("until_last_p50_ms"):
        rows.append((
            "four daphne processes on Redis, 2,500 clients each, one room: until the last has it (p50 / p99)",
            f"{_num(cluster.get('until_last_p50_ms'))} / {_num(cluster.get('until_last_p99_ms'))} ms",
        ))  # fmt: skip
    lines = [
        START,
        f"| daphne, `python -m bench` of {meta.get('date', '?')} (commit `{meta.get('commit', '?')}`, "
        f"load {meta.get('load_start', [0])[0]:.1f}) | |",
        "|---|---|",
        *(f"| {label} | {value} |" for label, value in rows),
        END,
    ]
    return "\n".join(lines)


def update_readme(path: Path, block: str) -> bool:
    """Replace the marked block of ``path``; False (and nothing written) when the markers are missing."""
    text = path.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        return False
    path.write_text(pattern.sub(lambda _: block, text, count=1))
    return True
