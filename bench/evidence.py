"""``python -m bench.evidence``: the reliability and presence figures of the docs, from the tests that hold them.

Runs the tests behind each guarantee of docs/reliability.md and docs/guides/presence.md ``--runs``
times (the three long ones in the first run only), in one pytest process per run, and writes:

- ``bench/evidence.md``: per guarantee, the test that holds it, the bound it asserts, and
  what it measured (median and range over the runs), plus every test's outcome per run;
- ``bench/evidence.json``: every figure of every run, and every failure's message.

Both are stamped with the commit, date, machine and load they were measured on. The tests
report figures through the ``evidence`` fixture (``tests/conftest.py``), which appends them
to the file named by ``RAVYN_EVIDENCE``. ``--presence-cost`` also runs ``bench/presence.py``
(both layers) and ``bench/presence_store.py`` into ``bench/presence-cost.md``/``.json``; ``--autobahn`` runs
``python -m tests.reliability.autobahn`` (about 6 minutes) into ``bench/autobahn.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .report import machine

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Long tests (a minute or so each): run in the first run only.
ONCE = {
    "tests/reliability/test_faults.py::test_ten_thousand_cycles_leave_no_tasks_memory_or_members",
    "tests/integration/test_presence.py::test_live_members_outlast_group_expiry_and_events_keep_flowing",
    "tests/integration/test_presence.py::test_a_thousand_joins_and_leaves_leave_nothing_in_redis",
}

#: README guarantee -> the tests that hold it (pytest node ids, parametrised ones whole).
GUARANTEES: list[tuple[str, list[str]]] = [
    (
        "handler raises: close 1011 at once",
        ["tests/integration/test_close_codes.py::test_handler_raises_closes_1011_with_one_traceback"],
    ),
    (
        "handler never accepts: 403 at once",
        ["tests/integration/test_close_codes.py::test_never_accepting_is_refused_with_403"],
    ),
    (
        "SIGTERM: every client 1001, every cleanup within DISCONNECT_GRACE",
        ["tests/integration/test_close_codes.py::test_sigterm_with_fifty_clients_closes_each_1001_and_runs_every_cleanup"],
    ),
    (
        "client vanishes: the handler sees 1006, nothing is left behind",
        [
            "tests/reliability/test_faults.py::test_tcp_reset_is_seen_by_the_handler",
            "tests/reliability/test_faults.py::test_ten_thousand_cycles_leave_no_tasks_memory_or_members",
        ],
    ),
    (
        "client stops reading: dropped, one larger message still goes out, its room not slowed",
        [
            "tests/reliability/test_memory.py::test_slow_reader_is_dropped_and_memory_stays_bounded",
            "tests/reliability/test_memory.py::test_one_message_larger_than_the_send_buffer_limit_still_goes_out",
            "tests/reliability/test_memory.py::test_slow_reader_does_not_slow_its_room",
        ],
    ),
    (
        "client floods: 1013 or TCP backpressure, memory bounded",
        [
            "tests/reliability/test_memory.py::test_flood_against_full_inbox_closes_1013",
            "tests/reliability/test_memory.py::test_flood_with_backpressure_loses_nothing_and_stays_bounded",
        ],
    ),
    (
        "Redis restarts: one ERROR per failed broadcast call, rooms whole again",
        ["tests/reliability/test_faults.py::test_redis_restart_recovers_without_restarting_daphne"],
    ),
    (
        "one sender's messages arrive in send order",
        ["tests/integration/test_ordering.py"],
    ),
    (
        "presence: a killed process's members gone within TTL, announced once",
        ["tests/integration/test_presence.py::test_sigkill_one_process_and_the_other_converges"],
    ),
    (
        "presence: complete again after Redis lost every key",
        ["tests/integration/test_presence.py::test_presence_comes_back_after_redis_loses_everything"],
    ),
    (
        "presence: members outlive group_expiry; 1,000 joins leave no key",
        [
            "tests/integration/test_presence.py::test_live_members_outlast_group_expiry_and_events_keep_flowing",
            "tests/integration/test_presence.py::test_a_thousand_joins_and_leaves_leave_nothing_in_redis",
        ],
    ),
]


def stamp(meta: dict[str, Any]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items() if v != "-")
    load = " / ".join(f"{x:.1f}" for x in meta["load_start"])
    return (
        f"Commit `{meta['commit']}`, {meta['date']}; {meta['cpu']} ({meta['cores']} cores, {meta['memory']}), "
        f"{meta['os']}, Python {meta['python']}; {versions}. Load average at the start: {load}."
    )


def run_tests(nodes: list[str], run: int, workdir: Path, log: Any) -> dict[str, Any]:
    figures = workdir / f"run{run}.jsonl"
    junit = workdir / f"run{run}.xml"
    env = {**os.environ, "RAVYN_EVIDENCE": str(figures), "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *nodes],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        check=False,
    )
    outcomes: dict[str, dict[str, Any]] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/") + ".py"
        nodeid = f"{module}::{case.get('name')}"
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome, message = kind if kind != "failure" else "failed", element.get("message", "")
                break
        outcomes[nodeid] = {"outcome": outcome, "seconds": float(case.get("time", 0)), "message": message[:2000]}
    records = [json.loads(line) for line in figures.read_text().splitlines()] if figures.exists() else []
    took = time.monotonic() - started
    failed = sum(o["outcome"] in ("failed", "error") for o in outcomes.values())
    log(f"evidence: run {run}: {len(outcomes)} tests, {failed} failed or errored, {took:.0f} s")
    return {"run": run, "seconds": round(took, 1), "outcomes": outcomes, "figures": records}


def number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"
    if float(value).is_integer():
        return f"{int(value):,}{' ' + unit if unit else ''}"
    return f"{value:.2f}{' ' + unit if unit else ''}"


def summary(runs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        "# Evidence: the README's guarantees, measured",
        "",
        f"Written by `python -m bench.evidence --runs {len(runs)}` (`make evidence`) in {meta['seconds']} s; "
        "do not edit.",
        stamp(meta),
        "",
        "Each row is a figure a test measured and the bound it asserts (a test fails beyond it); "
        "median and range over the runs. Raw figures of every run, and every failure's message: "
        "[evidence.json](evidence.json).",
        "",
        "| guarantee | test | figure | bound | median | range | runs |",
        "|---|---|---|---|---:|---|---:|",
    ]
    for title, nodes in GUARANTEES:
        seen: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for run in runs:
            for record in run["figures"]:
                if any(record["test"].startswith(node) for node in nodes):
                    seen.setdefault((record["test"], record["name"]), []).append(record)
        if not seen:
            tests = ", ".join(f"`{n.split('::')[-1]}`" for n in nodes)
            lines.append(f"| {title} | {tests} | (outcome only, below) | | | | |")
        for (test, name), records in seen.items():
            values = [r["value"] for r in records]
            unit = records[0]["unit"]
            spread = f"{number(min(values), unit)} to {number(max(values), unit)}" if len(values) > 1 else ""
            short = test.split("::")[-1]
            bound = records[0]["bound"]
            if bound and unit and unit != "s" and bound[-1].isdigit():
                bound += f" {unit}"
            lines.append(
                f"| {title} | `{short}` | {name} | {bound or '—'} | "
                f"{number(statistics.median(values), unit)} | {spread} | {len(values)} |"
            )
    lines += ["", "## Outcomes", "", "| test | " + " | ".join(f"run {r['run']}" for r in runs) + " |"]
    lines.append("|---|" + "---|" * len(runs))
    tests = sorted({t for r in runs for t in r["outcomes"]})
    errors = 0
    for test in tests:
        cells = []
        for run in runs:
            o = run["outcomes"].get(test)
            if o is None:
                cells.append("—")
            else:
                errors += o["outcome"] in ("failed", "error")
                cells.append(f"{o['outcome']} ({o['seconds']:.0f} s)")
        lines.append(f"| `{test}` | " + " | ".join(cells) + " |")
    lines += ["", f"Failed or errored test runs: {errors}.", ""]
    return "\n".join(lines)


def presence_cost(meta: dict[str, Any], log: Any) -> None:
    """bench/presence.py on Redis (two processes) and in memory (one), and bench/presence_store.py;
    their tables, stamped."""
    sections = []
    raw: dict[str, Any] = {}
    for script, flags, name in (
        ("presence.py", ["--rounds", "3"], "presence-redis.json"),
        ("presence.py", ["--rounds", "3", "--memory"], "presence-memory.json"),
        ("presence_store.py", ["--reps", "5"], "presence-store.json"),
    ):
        argv = [sys.executable, str(HERE / script), *flags]
        log(f"evidence: {' '.join(argv[1:])}")
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
        sections.append(done.stdout.strip())
        raw[name] = json.loads((HERE / "raw" / name).read_text())
    text = "\n".join(
        [
            "# Presence cost, measured",
            "",
            "Written by `python -m bench.evidence --presence-cost` (runs `bench/presence.py --rounds 3`, "
            "`bench/presence.py --memory --rounds 3` and `bench/presence_store.py --reps 5`); do not edit.",
            stamp(meta),
            "",
            "Raw figures of every round: [presence-cost.json](presence-cost.json).",
            "",
            "\n\n".join(sections),
            "",
        ]
    )
    (HERE / "presence-cost.md").write_text(text)
    (HERE / "presence-cost.json").write_text(json.dumps({"meta": meta, **raw}, indent=1))


def autobahn(meta: dict[str, Any], log: Any) -> None:
    """Autobahn|Testsuite against ours and the plain consumer; its summary, stamped."""
    with tempfile.TemporaryDirectory(prefix="evidence-autobahn-") as tmp:
        log("evidence: python -m tests.reliability.autobahn (about 6 minutes)")
        subprocess.run([sys.executable, "-m", "tests.reliability.autobahn", "--out", tmp], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        body = (Path(tmp) / "summary.md").read_text()
    (HERE / "autobahn.md").write_text(
        "# Autobahn|Testsuite, measured\n\nWritten by `python -m bench.evidence --autobahn` "
        f"(runs `python -m tests.reliability.autobahn`); do not edit.\n{stamp(meta)}\n\n{body}\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evidence", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the guarantee tests (default: %(default)s)")
    parser.add_argument("--no-tests", action="store_true", help="skip the guarantee tests (keep evidence.md)")
    parser.add_argument("--presence-cost", action="store_true", help="also bench/presence.py on both layers")
    parser.add_argument("--autobahn", action="store_true", help="also the Autobahn testsuite (about 6 minutes)")
    args = parser.parse_args(argv)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    meta = machine()
    meta["load_start"] = os.getloadavg()
    started = time.monotonic()
    failures = 0
    if not args.no_tests:
        nodes = [node for _, tests in GUARANTEES for node in tests]
        with tempfile.TemporaryDirectory(prefix="evidence-") as tmp:
            runs = [
                run_tests(nodes if run == 1 else [n for n in nodes if n not in ONCE], run, Path(tmp), log)
                for run in range(1, args.runs + 1)
            ]
        meta["seconds"] = round(time.monotonic() - started)
        failures = sum(o["outcome"] in ("failed", "error") for r in runs for o in r["outcomes"].values())
        (HERE / "evidence.md").write_text(summary(runs, meta))
        (HERE / "evidence.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
        log(f"evidence: wrote {HERE / 'evidence.md'} and evidence.json ({failures} failed test runs)")
    if args.presence_cost:
        presence_cost(meta, log)
    if args.autobahn:
        autobahn(meta, log)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
