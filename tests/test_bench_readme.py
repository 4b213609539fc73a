"""The README's performance table is written from a run's figures (bench/readme.py), not by hand."""

from __future__ import annotations

from pathlib import Path

from bench.readme import END, START, readme_block, update_readme
from bench.report import X  # the multiplication sign of the tables

ROOT = Path(__file__).resolve().parents[1]

RESULTS = {
    "echo": {"daphne": {"ref": {"cpu_us_per_msg": 100.0}, "ravyn": {"cpu_us_per_msg": 50.0}}},
    "memory": {"daphne": {"ref": {"kib_per_conn": 30.0}, "ravyn": {"kib_per_conn": 27.0}}},
    "fanout": {
        "daphne/memory": {
            "100": {
                "ref": {"cpu_ms_per_broadcast": 10.0, "broadcasts_per_s": 50.0},
                "ravyn": {"cpu_ms_per_broadcast": 0.5, "broadcasts_per_s": 600.0},
                "listloop": {"cpu_ms_per_broadcast": 0.4, "broadcasts_per_s": 500.0},
            },
        },
    },
    "scale": {"idle": {"ravyn": {"kib_per_conn": 31.9, "until_last_p50_ms": 631.0}}},
}
META = {"date": "2026-11-30 05:00 UTC", "commit": "abc1234", "load_start": (1.5, 1.0, 1.0)}


def test_the_block_carries_the_runs_ratios_and_stamp() -> None:
    block = readme_block(RESULTS, META)
    assert block.startswith(START) and block.endswith(END)
    assert "2026-11-30 05:00 UTC" in block and "`abc1234`" in block and "load 1.5" in block
    assert f"| echo, server CPU per message, hand-written ÷ ravyn_channels | 2.00{X} |" in block
    assert f"(100 / 1,000 clients) | 20.00{X} / —" in block  # group_send ÷ ours; 1,000 not in this run
    assert f"list loop, in memory (100 / 1,000 clients) | 1.20{X} / —" in block
    assert f"| 0.90{X} |" in block and "31.9 KiB; 631 ms" in block


def test_update_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold figures\n{END}\noutro\n")
    assert update_readme(readme, f"{START}\nnew\n{END}")
    assert readme.read_text() == f"intro\n{START}\nnew\n{END}\noutro\n"
    readme.write_text("no markers")
    assert not update_readme(readme, "x") and readme.read_text() == "no markers"


def test_the_readme_has_the_markers() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1 and text.index(START) < text.index(END)
