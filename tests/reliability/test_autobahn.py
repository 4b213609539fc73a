"""Autobahn|Testsuite: no case is graded worse for an ``@websocket`` route than for a plain consumer.

Both servers are real daphne processes graded by one ``wstest`` run (see
``tests/reliability/autobahn/``). Plain daphne's two 60-second timeouts on
empty messages (9.7.1, 9.8.1) are not run for the plain consumer here;
``python -m tests.reliability.autobahn`` runs everything.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .autobahn.report import CaseResult, worse
from .autobahn.run import CASES, MIB, PLAIN_EMPTY_MESSAGE_CASES, conformance
from .autobahn.wstest import WstestUnavailable, ensure_wstest


@pytest.fixture(scope="module")
def wstest() -> Path:
    """``wstest`` from the cached Python 2.7 virtualenv; missing is a failure under CI=true."""
    try:
        return ensure_wstest()
    except WstestUnavailable as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Autobahn|Testsuite is required under CI: {exc}")
        pytest.skip(str(exc))


@pytest.mark.integration
@pytest.mark.slow
def test_no_case_worse_than_a_plain_consumer(wstest: Path, tmp_path: Path) -> None:
    result = conformance(MIB, CASES, tmp_path, skip_plain=PLAIN_EMPTY_MESSAGE_CASES, timeout=300)
    ours = result.ours
    print(result.summary())
    assert len(ours) == 301, "cases 1-7, 9 and 10 of autobahntestsuite 25.10.1 are 301"
    assert set(ours) == set(result.plain) | set(PLAIN_EMPTY_MESSAGE_CASES)
    assert result.worse == []
    # what the daphne adapter changes: empty messages come back (daphne drops them) ...
    assert [ours[c].behavior for c in ("1.1.1", "6.1.1", "9.7.1", "9.8.1")] == ["OK"] * 4
    # ... and a 4 MiB message over the 1 MiB limit gets a 1009 close frame, not a dropped connection
    assert ours["9.1.4"].close_code == 1009


@pytest.mark.integration
@pytest.mark.slow
def test_messages_up_to_16_mib_within_a_raised_limit(wstest: Path, tmp_path: Path) -> None:
    result = conformance(20 * MIB, ["9.*"], tmp_path, skip_plain=PLAIN_EMPTY_MESSAGE_CASES, timeout=300)
    print(result.summary())
    assert result.worse == []
    assert sorted(c for c, r in result.ours.items() if r.behavior != "OK") == []


def graded(behavior: str, close: str = "OK", code: int | None = 1000) -> CaseResult:
    return CaseResult("1.1.1", behavior, close, code, 0)


@pytest.mark.parametrize(
    ("ours", "ref", "is_worse"),
    [
        (graded("OK"), graded("OK"), False),
        (graded("OK"), graded("FAILED"), False),
        (graded("NON-STRICT"), graded("OK"), True),
        (graded("FAILED"), graded("NON-STRICT"), True),
        (graded("UNIMPLEMENTED"), graded("OK"), True),
        (graded("INFORMATIONAL", "INFORMATIONAL", 1000), graded("INFORMATIONAL", "INFORMATIONAL", None), False),
        (graded("OK", "WRONG CODE", 1011), graded("OK"), True),
        (graded("OK", "UNCLEAN", None), graded("OK", "FAILED BY CLIENT"), True),
        (None, graded("FAILED"), True),
        (graded("FAILED"), None, False),
    ],
)
def test_worse_ranks_both_grades(ours: CaseResult | None, ref: CaseResult | None, is_worse: bool) -> None:
    assert worse(ours, ref) is is_worse


def test_racy_cases_tie_between_ok_and_non_strict_only() -> None:
    def racy(behavior: str, close: str = "OK") -> CaseResult:
        return CaseResult("3.4", behavior, close, 1002, 0)

    assert worse(racy("NON-STRICT"), racy("OK")) is False
    assert worse(racy("FAILED"), racy("OK")) is True
    assert worse(racy("NON-STRICT", "UNCLEAN"), racy("OK")) is True
    assert worse(graded("NON-STRICT"), graded("OK")) is True  # 1.1.1 is not racy
