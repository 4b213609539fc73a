"""``python -m bench.compare``: fan-out of variants served from different source trees, in one run.

For trying a change against the code before it: copy the old tree's ``bench/`` and
``ravyn_channels/`` somewhere (``git worktree add``, or ``cp -r``), then::

    python -m bench.compare --size 100 --rounds 5 --out /tmp/ab.md \\
        listloop=listloop@/tmp/old ravyn=ravyn@/tmp/old ravyn_new=ravyn@.

Each argument is ``name=variant@tree``; every target is a daphne process on the in-memory
layer, measured by one client in interleaved slices (as ``python -m bench`` does). Ratios are
against the target named ``listloop``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from .run import fanout_summary
from .servers import Server, run_client


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    parser.add_argument("--size", type=int, default=100, help="clients in the room")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (and raw JSON) here")
    parser.add_argument("targets", nargs="+", help="name=variant@tree")
    args = parser.parse_args(argv)
    logdir = Path(tempfile.mkdtemp(prefix="ravyn-compare-"))
    servers: dict[str, Server] = {}
    try:
        for arg in args.targets:
            name, _, rest = arg.partition("=")
            variant, _, tree = rest.partition("@")
            path = str(Path(tree or ".").resolve())
            servers[name] = Server(variant, "daphne", "memory", f"compare-{os.getpid()}-{name}-", logdir, path=path)
        for server in servers.values():
            server.wait_ready()
        targets = {n: {"urls": [s.url(f"/fanout/room{args.size}")], "pids": [s.pid]} for n, s in servers.items()}
        load = os.getloadavg()
        spec = {
            "workload": "fanout", "targets": targets, "clients": args.size, "slice": 2.0, "rounds": args.rounds,
            "min_samples": 5, "window": 8,
        }  # fmt: skip
        result = run_client(spec, 1500)
        meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": "compare", "load_start": load}
        text = fanout_summary({"fanout": {"daphne/memory": {str(args.size): result}}}, meta)
        if args.out is not None:
            args.out.write_text(text + "\n" + json.dumps(result) + "\n")
        print(text)
    finally:
        for server in servers.values():
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
