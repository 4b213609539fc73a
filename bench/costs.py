"""The ``results.md`` section on what room history and metrics cost (issues 15 and 17), same run."""

from __future__ import annotations

from typing import Any

from .report import SHORT, _num, _ratio, _table, _x


def costs_markdown(results: dict[str, Any], plan: Any) -> list[str]:
    """What room history and metrics add: on ÷ off from the tables above, the resume, Redis memory."""
    rows = []
    for key, by_size in results["fanout"].items():
        for n, by_variant in by_size.items() if "skipped" not in by_size else ():
            off = by_variant.get("ravyn") or {}
            for name in ("history", "metrics"):
                on = by_variant.get(name)
                if not isinstance(on, dict) or "error" in on:
                    continue
                rows.append([
                    key.replace("/", ", "), n, SHORT[name], _num(off.get("broadcasts_per_s"), 1),
                    _num(on.get("broadcasts_per_s"), 1),
                    _x(_ratio(on.get("broadcasts_per_s"), off.get("broadcasts_per_s"))),
                    _num(off.get("cpu_ms_per_broadcast"), 2), _num(on.get("cpu_ms_per_broadcast"), 2),
                    _x(_ratio(on.get("cpu_ms_per_broadcast"), off.get("cpu_ms_per_broadcast"))),
                ])  # fmt: skip
    for server, by_variant in results["echo"].items():
        on, off = by_variant.get("metrics"), by_variant.get("ravyn") or {}
        if isinstance(on, dict) and "error" not in on:
            rows.append([
                f"{server}, echo", "—", "metrics", _num(off.get("msgs_per_s")), _num(on.get("msgs_per_s")),
                _x(_ratio(on.get("msgs_per_s"), off.get("msgs_per_s"))),
                _num(off.get("cpu_us_per_msg"), 1) + " µs", _num(on.get("cpu_us_per_msg"), 1) + " µs",
                _x(_ratio(on.get("cpu_us_per_msg"), off.get("cpu_us_per_msg"))),
            ])  # fmt: skip
    resume = results.get("resume") or {}
    if not rows and not resume:
        return []
    lines = [
        "",
        "## What room history and metrics add (on ÷ off, same run)",
        "",
        "From the fan-out and echo tables above: **history** is the `ravyn` handler with "
        "`ConnectionManager(history=HistoryConfig())` (every broadcast stored, then delivered in its JSON "
        'envelope), **metrics** the `ravyn` handlers with `RAVYN_CHANNELS["METRICS"] = True` (every other '
        "variant runs with metrics off). Both are measured on daphne only, interleaved with the other variants. "
        "Rates are sustained broadcasts/s (or echo msgs/s); CPU is the server's per broadcast (ms) or per "
        "echo (µs).",
        "",
    ]
    lines += _table(["server, layer", "clients", "on", "rate off", "rate on", "on ÷ off", "CPU off", "CPU on",
                     "CPU on ÷ off"], rows)  # fmt: skip
    if resume:
        spec = plan.resume
        lines += [
            "",
            f"### Resume: {spec['messages']:,} missed messages of {spec['size']} bytes to one client",
            "",
            "A sender broadcasts a marker and then the messages into a fresh room with history and leaves; a "
            "client connects with `?since=<the marker's position>` and is sent every message after it. "
            "**connect() ms**: the handler's own time for `manager.connect(since=...)` (accept, join, read the "
            "history, send the replay), in wall time; **server CPU ms**: the server processes' CPU from the "
            "connect until the replay was sent (handshake included; not Redis's own), the figure of the Goals "
            "row (on a loaded machine the wall time also counts the waits for a core); **client ms**: until "
            "the client had the last message. "
            f"Medians of {spec['rounds']} rounds. Redis memory: `MEMORY USAGE` of the room's stream and meta "
            f"hash once they hold the {spec['messages']:,} messages.",
            "",
        ]
        rows = []
        for key, by_variant in resume.items():
            r = by_variant.get("history") if isinstance(by_variant, dict) else None
            if not isinstance(r, dict) or "error" in r:
                rows.append([key.replace("/", ", "), str((r or by_variant or {}).get("error", "not run")), "", "", ""])
                continue
            size = r.get("redis_bytes")
            rows.append([
                key.replace("/", ", "), _num(r.get("server_ms"), 1), _num(r.get("cpu_ms"), 1),
                _num(r.get("client_ms"), 1),
                f"{size:,} ({size / r['messages']:,.0f} per message)" if size else "—",
            ])  # fmt: skip
        lines += _table(["server, layer", "connect() ms", "server CPU ms", "client ms",
                         "Redis bytes"], rows)  # fmt: skip
    return lines
