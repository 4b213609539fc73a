"""``python -m bench [--quick]``: run every workload, write ``bench/results.md`` and ``bench/results.png``.

Servers (daphne, uvicorn) run on 127.0.0.1 in their own processes, pinned to
one core; the picows load generator runs in another process on another core.
The raw figures go to ``bench/raw/results.json`` (not committed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .readme import readme_block, update_readme
from .report import goal_rows, machine, markdown, plot
from .run import FULL, QUICK, Runner, fanout_summary
from .scale_report import plot_scale

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short slices, one round: under two minutes")
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md and results.png go")
    parser.add_argument("--servers", default=None, help="comma-separated subset of daphne,uvicorn (default: both)")
    parser.add_argument(
        "--redis", default=None, help="comma-separated subset of redis,pubsub, or 'none' (default: both)"
    )
    parser.add_argument(
        "--scale", action="store_true",
        help="also the scale runs: 10,000 connections, four processes, 1,000 rooms, a reconnect storm",
    )  # fmt: skip
    parser.add_argument(
        "--scale-fraction", type=float, default=1.0, help="shrink the scale counts (e.g. 0.1 for a quick try)"
    )
    parser.add_argument("--only-scale", action="store_true", help="skip the regular workloads (for trying)")
    parser.add_argument(
        "--only", choices=("fanout",), default=None,
        help="run one workload only (for trying; writes a short summary, not the full report)",
    )  # fmt: skip
    parser.add_argument("--sizes", default=None, help="comma-separated fan-out room sizes (default: 100,1000)")
    parser.add_argument(
        "--variants", default=None, help="comma-separated subset of the fan-out variants (with --only fanout)"
    )
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds per workload")
    args = parser.parse_args(argv)

    plan = QUICK if args.quick else FULL
    if args.servers:
        plan.servers = tuple(s for s in args.servers.split(",") if s)
    if args.redis:
        plan.redis_layers = () if args.redis == "none" else tuple(s for s in args.redis.split(",") if s)
    if args.scale or args.only_scale:
        plan.scale = args.scale_fraction
    if args.only_scale:
        plan.servers, plan.redis_layers = (), ()
    if args.sizes:
        plan.sizes = tuple(int(n) for n in args.sizes.split(",") if n)
    if args.rounds:
        plan.fanout = {**plan.fanout, "rounds": args.rounds}
    if args.only:
        plan.only = args.only
        plan.redis_layers = ()
        if args.variants:
            plan.fanout_variants = tuple(v for v in args.variants.split(",") if v)

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    started = time.monotonic()
    load_start = os.getloadavg()
    log(f"bench: {plan.name} run, load average {load_start[0]:.1f}")
    results = Runner(plan, log).run()
    meta = machine()
    meta["load_start"] = load_start
    meta["seconds"] = round(time.monotonic() - started)

    args.out.mkdir(parents=True, exist_ok=True)
    if plan.only:
        text = fanout_summary(results, meta)
        (args.out / "fanout.md").write_text(text)
        (args.out / "fanout.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
        print(text)
        return 0
    text = markdown(results, meta, plan)
    (args.out / "results.md").write_text(text)
    plot(results, meta, args.out / "results.png")
    if "scale" in results:
        plot_scale(results["scale"], meta, args.out / "scale.png")
    raw = HERE / "raw"
    raw.mkdir(exist_ok=True)
    (raw / "results.json").write_text(json.dumps({"meta": meta, "plan": plan.name, "results": results}, indent=1))
    readme = HERE.parent / "README.md"
    if args.out.resolve() == HERE and plan.name == "full" and not args.only_scale and plan.only is None:
        if update_readme(readme, readme_block(results, meta)):
            log(f"bench: updated the performance table of {readme}")
    print(text)
    log(f"bench: done in {meta['seconds']} s; wrote {args.out / 'results.md'} and {args.out / 'results.png'}")
    missed = [row for row in goal_rows(results) if row[-1] == "**no**"]
    if missed:
        log(f"bench: {len(missed)} goal(s) missed in this run (see the Goals table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
