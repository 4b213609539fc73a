"""One Autobahn|Testsuite run against ours and a plain consumer, side by side.

Two daphne processes on 127.0.0.1 with the same command line: ``ours.py`` (an
``@websocket`` echo route) and ``plain.py`` (a hand-written Channels consumer).
One ``wstest -m fuzzingclient`` run grades both, case by case.

``python -m tests.reliability.autobahn`` runs cases 1-7, 9 and 10 (12 and 13
need permessage-deflate, which daphne does not offer) at daphne's default
1 MiB limit and again at 20 MiB, and writes ``summary.md`` under
``.autobahn/reports/``. ``--help`` lists the options.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import ROOT, Server, free_port, server_env

from . import report
from .report import CaseResult, Results
from .wstest import ensure_wstest, home, py2_env

CASES = ("1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*")
MIB = 1024 * 1024
#: Plain daphne never sends an empty message back: these two cases (1000 empty
#: messages) each wait out wstest's 60 s timeout and fail. 1.1.1 and 6.1.1 show it fast.
PLAIN_EMPTY_MESSAGE_CASES = ("9.7.1", "9.8.1")


@dataclass
class Conformance:
    """The graded cases of one run, per server, and what was re-run."""

    limit: int
    ours: Results
    plain: Results
    rerun: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def worse(self) -> list[str]:
        return report.worse_cases(self.ours, self.plain)

    def summary(self, title: str | None = None) -> str:
        title = title or f"max message size {self.limit // MIB} MiB"
        notes = list(self.notes)
        if self.rerun:
            notes.append(f"Re-run for both servers (ours NON-STRICT, plain OK; best kept): {', '.join(self.rerun)}.")
        return report.summary(title, self.ours, self.plain, notes)


@contextmanager
def servers(limit: int, logdir: Path) -> Iterator[dict[str, str]]:
    """``{"ours": url, "plain": url}``, both daphne, both stopped on exit."""
    daphne = str(Path(sys.executable).parent / "daphne")
    flags = ["--websocket-max-message-size", str(limit), "--websocket-max-frame-size", str(limit)]
    apps = {"ours": "tests.reliability.autobahn.ours:app", "plain": "tests.reliability.autobahn.plain:app"}
    started: dict[str, Server] = {}
    try:
        for agent, app in apps.items():
            port = free_port()
            argv = [daphne, "-b", "127.0.0.1", "-p", str(port), *flags, app]
            env = server_env(AUTOBAHN_MAX_MESSAGE_SIZE=str(limit))
            started[agent] = Server(argv, ROOT, env, port, logdir / f"daphne-{agent}.log")
        yield {agent: f"{server.ws}/echo" for agent, server in started.items()}
    finally:
        for server in started.values():
            server.stop()


def fuzz(
    wstest: Path,
    urls: dict[str, str],
    cases: Sequence[str],
    outdir: Path,
    skip: dict[str, Sequence[str]] | None = None,
    timeout: float = 900.0,
) -> dict[str, Results]:
    """Run ``wstest -m fuzzingclient`` over ``cases`` against every URL; the graded results per agent."""
    outdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": agent, "url": url} for agent, url in urls.items()],
        "cases": list(cases),
        "exclude-cases": [],
        "exclude-agent-cases": {agent: list(ids) for agent, ids in (skip or {}).items()},
    }
    spec_path = outdir / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=2))
    with open(outdir / "wstest.log", "wb") as log:
        try:
            done = subprocess.run(
                [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                cwd=outdir,
                env=py2_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"wstest ran over {timeout:.0f} s; its output is in {outdir / 'wstest.log'}") from exc
    index = outdir / "index.json"
    if done.returncode != 0 or not index.exists():
        raise RuntimeError(f"wstest exited with {done.returncode} and no report; see {outdir / 'wstest.log'}")
    return report.load(index)


def _race(ours: CaseResult | None, plain: CaseResult | None) -> bool:
    """OK for the plain consumer, NON-STRICT for ours, same closing grade.

    NON-STRICT here means the server failed the connection on a bad frame
    before the echo of an earlier good message went out: which comes first
    depends on how the client's bytes were split into reads.
    """
    if ours is None or plain is None:
        return False
    return (ours.behavior, plain.behavior) == ("NON-STRICT", "OK") and ours.rank[1] <= plain.rank[1]


def settle_races(
    result: Conformance, wstest: Path, urls: dict[str, str], workdir: Path, reruns: int, timeout: float
) -> None:
    """Re-run, for both servers, the cases ours lost only to a race; keep each server's best grade."""
    for attempt in range(1, reruns + 1):
        racing = [c for c in result.worse if _race(result.ours.get(c), result.plain.get(c))]
        if not racing:
            return
        result.rerun.extend(c for c in racing if c not in result.rerun)
        again = fuzz(wstest, urls, racing, workdir / f"rerun-{attempt}", timeout=timeout)
        for agent, results in (("ours", result.ours), ("plain", result.plain)):
            for case, case_result in again.get(agent, {}).items():
                results[case] = report.best_of(results[case], case_result)


def conformance(
    limit: int = MIB,
    cases: Sequence[str] = CASES,
    workdir: Path | None = None,
    skip_plain: Sequence[str] = (),
    reruns: int = 2,
    timeout: float = 900.0,
) -> Conformance:
    """Grade ours and the plain consumer; re-run (both, up to ``reruns`` times) cases lost to a race."""
    wstest = ensure_wstest()
    workdir = workdir or home() / "reports" / f"{limit // MIB}MiB"
    workdir.mkdir(parents=True, exist_ok=True)
    with servers(limit, workdir) as urls:
        graded = fuzz(wstest, urls, cases, workdir / "report", {"plain": skip_plain}, timeout)
        result = Conformance(limit, graded.get("ours", {}), graded.get("plain", {}))
        settle_races(result, wstest, urls, workdir, reruns, timeout)
    if skip_plain:
        result.notes.append(
            f"Not run for the plain consumer: {', '.join(skip_plain)} (empty messages, "
            "which plain daphne never echoes: each waits out wstest's 60 s timeout and fails)."
        )
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.autobahn", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--limit", type=int, action="append", help="max message size in bytes (repeatable); default 1 MiB and 20 MiB"
    )
    parser.add_argument("--cases", nargs="+", default=list(CASES), help="Autobahn case patterns (default: %(default)s)")
    parser.add_argument(
        "--skip-plain-timeouts",
        action="store_true",
        help=f"skip {', '.join(PLAIN_EMPTY_MESSAGE_CASES)} for the plain consumer (2 minutes of timeouts)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report directory (default: .autobahn/reports)")
    args = parser.parse_args(argv)
    out = args.out or home() / "reports"
    sections = []
    worse = False
    for limit in args.limit or [MIB, 20 * MIB]:
        skip = PLAIN_EMPTY_MESSAGE_CASES if args.skip_plain_timeouts else ()
        result = conformance(limit, args.cases, out / f"{limit}", skip_plain=skip)
        sections.append(result.summary())
        print(sections[-1], flush=True)
        worse = worse or bool(result.worse)
    (out / "summary.md").write_text("\n".join(sections))
    print(f"Summary: {out / 'summary.md'}; full reports: {out}/*/report/index.html")
    return 1 if worse else 0
