"""``python -m bench.versus --base DIR``: the topics workloads of this checkout against another one.

The ``ravyn`` echo and fan-out beside the ``topics`` variant of this checkout and of the checkout in
``DIR`` (``git worktree add --detach DIR main``), all three servers started side by side and measured
in the same client process, in interleaved slices: a before/after of a change to the topics path
on a shared machine. Prints the figures and the ratios to ``ravyn``; ``--json FILE`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from .run import variant_path
from .servers import Server, run_client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (its topics variant is 'base')")
    parser.add_argument("--server", default="daphne", choices=("daphne", "uvicorn"))
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--sizes", default="100,1000", help="fan-out room sizes")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    logdir = Path(tempfile.mkdtemp(prefix="ravyn-versus-"))
    prefix = f"versus-{os.getpid()}-"
    servers = {
        "ravyn": Server("ravyn", args.server, "memory", prefix + "ravyn", logdir),
        "topics": Server("topics", args.server, "memory", prefix + "topics", logdir),
        "base": Server("topics", args.server, "memory", prefix + "base", logdir, path=str(args.base.resolve())),
    }
    try:
        for s in servers.values():
            s.wait_ready()

        def targets(path: str) -> dict[str, Any]:
            return {
                name: {"urls": [s.url(variant_path(s.variant, path))], "pids": [s.pid]} for name, s in servers.items()
            }

        results: dict[str, Any] = {"server": args.server, "load_start": os.getloadavg()}
        echo = {"conns": 50, "size": 32, "warmup": 0.3, "slice": 2.0, "rounds": args.rounds}
        results["echo"] = run_client({"workload": "echo", "targets": targets("/echo"), **echo}, 900)
        for n in (int(x) for x in args.sizes.split(",")):
            fanout = {"clients": n, "slice": 2.0, "rounds": args.rounds, "min_samples": 5, "window": 8}
            spec = {"workload": "fanout", "targets": targets(f"/fanout/room{n}"), **fanout}
            results[f"fanout{n}"] = run_client(spec, 1200)
        results["load_end"] = os.getloadavg()
    finally:
        for s in servers.values():
            s.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    report(results)
    return 0


def report(results: dict[str, Any]) -> None:
    load = results["load_start"][0], results["load_end"][0]
    print(f"{results['server']}, load average {load[0]:.1f} -> {load[1]:.1f}")
    keys = {
        "echo": ("msgs_per_s", "cpu_us_per_msg"),
        "fanout": ("broadcasts_per_s", "cpu_ms_per_broadcast", "cpu_ms_per_broadcast_one"),
    }
    shares = ("server_cpu_share", "client_cpu_share", "server_runq_share")
    for workload, by_name in results.items():
        if not isinstance(by_name, dict) or "ravyn" not in by_name:
            continue
        if any("error" in v for v in by_name.values()):
            print(workload, {k: v.get("error") for k, v in by_name.items()})
            continue
        rate, *costs = keys["echo" if workload == "echo" else "fanout"]
        for name, v in by_name.items():
            figures = ", ".join(f"{k} {v[k]:.4g}" for k in (rate, *costs, *shares))
            print(f"  {workload} {name}: {figures}; lost {v.get('lost', 0)}; slices {v['slices']}")
        ours = by_name["ravyn"]
        for name in ("topics", "base"):
            v = by_name[name]
            ratios = [f"{rate} {v[rate] / ours[rate]:.3f}"]
            ratios += [f"{k} ravyn÷{name} {ours[k] / v[k]:.3f}" for k in costs]
            print(f"  {workload} {name} vs ravyn: {', '.join(ratios)}")


if __name__ == "__main__":
    sys.exit(main())
