"""Reading ``wstest``'s ``index.json`` and comparing two servers case by case.

Autobahn grades each case twice: ``behavior`` (the messages exchanged) and
``behaviorClose`` (the closing handshake). A case is worse for one server when
either grade ranks below the other server's. INFORMATIONAL cases record
behaviour the RFC leaves open, so they rank with OK; their close codes are
listed side by side instead.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

GRADES = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
BEHAVIOR_RANK = {"OK": 0, "INFORMATIONAL": 0, "NON-STRICT": 1, "UNIMPLEMENTED": 2, "FAILED": 3}
CLOSE_RANK = {
    "OK": 0,
    "INFORMATIONAL": 0,
    "NON-STRICT": 1,
    "FAILED BY CLIENT": 1,
    "WRONG CODE": 2,
    "UNCLEAN": 2,
    "UNIMPLEMENTED": 2,
    "FAILED": 3,
}
MISSING = 9  # a case one server has no result for (wstest crashed or the case was excluded)


@dataclass(frozen=True)
class CaseResult:
    case: str
    behavior: str
    close: str
    close_code: int | None
    duration_ms: int

    @property
    def rank(self) -> tuple[int, int]:
        return BEHAVIOR_RANK.get(self.behavior, MISSING), CLOSE_RANK.get(self.close, MISSING)


Results = dict[str, CaseResult]


def case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def load(index_json: Path) -> dict[str, Results]:
    """``{agent: {case id: CaseResult}}`` from a fuzzingclient report's ``index.json``."""
    raw = json.loads(index_json.read_text())
    return {
        agent: {
            case: CaseResult(case, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode"), r.get("duration", 0))
            for case, r in cases.items()
        }
        for agent, cases in raw.items()
    }


#: Cases where a valid message is followed at once by an invalid frame. daphne fails the
#: connection (a correct 1002 close) as soon as autobahn parses the invalid frame; whether the
#: echo of the valid message went out first depends on whether both frames arrived in one TCP
#: read, so each server is graded OK or NON-STRICT by chance (measured: both servers move between
#: the two from run to run). Between OK and NON-STRICT these cases are a tie; any other difference
#: (a wrong or unclean close, a failure) still counts.
RACY_CASES = frozenset({"3.2", "3.3", "3.4", "4.1.3", "4.1.4", "4.1.5", "4.2.3", "4.2.4", "4.2.5", "5.15"})
_PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def worse(ours: CaseResult | None, ref: CaseResult | None) -> bool:
    """Whether ``ours`` is graded below ``ref`` in either grade (a missing result ranks last)."""
    if ref is None:
        return False
    if ours is None:
        return True
    if (
        ours.case in RACY_CASES
        and ours.behavior in _PASSING
        and ref.behavior in _PASSING
        and CLOSE_RANK.get(ours.close, MISSING) <= CLOSE_RANK.get(ref.close, MISSING)
    ):
        return False
    return any(o > r for o, r in zip(ours.rank, ref.rank, strict=True))


def worse_cases(ours: Results, ref: Results) -> list[str]:
    return sorted((c for c in ref if worse(ours.get(c), ref[c])), key=case_key)


def better_cases(ours: Results, ref: Results) -> list[str]:
    return sorted((c for c in ours if worse(ref.get(c), ours[c]) and c in ref), key=case_key)


def best_of(first: CaseResult, second: CaseResult) -> CaseResult:
    return second if second.rank < first.rank else first


def counts(results: Results) -> Counter[str]:
    counter = Counter(r.behavior for r in results.values())
    counter["close not OK"] = sum(1 for r in results.values() if CLOSE_RANK.get(r.close, MISSING) > 0)
    return counter


def _describe(result: CaseResult | None) -> str:
    if result is None:
        return "not run"
    close = "" if result.close in ("OK", "INFORMATIONAL") else f", close {result.close}"
    return f"{result.behavior}{close} (code {result.close_code})"


def summary(title: str, ours: Results, ref: Results, notes: Sequence[str] = ()) -> str:
    """A Markdown section: counts per server, then the cases that differ."""
    columns = [*GRADES, "close not OK"]
    lines = [
        f"### {title}",
        "",
        "| server | cases | " + " | ".join(columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for name, results in (("ravyn_channels `@websocket` echo", ours), ("plain Channels consumer", ref)):
        tally = counts(results)
        lines.append(f"| {name} | {len(results)} | " + " | ".join(str(tally[c]) for c in columns) + " |")
    lines.append("")
    bad = worse_cases(ours, ref)
    lines.append(f"Worse for ours than for the plain consumer: {', '.join(bad) if bad else 'none'}.")
    for case in bad:
        lines.append(f"- {case}: ours {_describe(ours.get(case))}; plain {_describe(ref.get(case))}")
    good = better_cases(ours, ref)
    lines.append(f"Better for ours: {', '.join(good) if good else 'none'}.")
    for case in good:
        lines.append(f"- {case}: ours {_describe(ours.get(case))}; plain {_describe(ref.get(case))}")
    informational = [
        c
        for c in sorted(ours, key=case_key)
        if ours[c].behavior == "INFORMATIONAL" and c in ref and ours[c].close_code != ref[c].close_code
    ]
    for case in informational:
        lines.append(f"- {case} (informational): ours {_describe(ours[case])}; plain {_describe(ref[case])}")
    lines.extend(notes)
    return "\n".join(lines) + "\n"
