"""`python -m benchmarks.speed --quick` runs both variants end to end and prints every table.

Only the shape is checked (figures depend on the machine), plus what holds on any
machine: against a server with run watching, a short streaming run costs fewer
requests than against one without.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_quick_speed_run_prints_before_and_after_side_by_side(tmp_path: Path) -> None:
    raw, markdown = tmp_path / "speed.json", tmp_path / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.speed",
            "--quick",
            "--json",
            str(raw),
            "--markdown",
            str(markdown),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    out = completed.stdout
    for heading in (
        "### Trivial cell",
        "printing a line every second",
        "Push and pull",
        "### Targets",
    ):
        assert heading in out
    assert "| | fallback | after |" in out
    section = markdown.read_text()
    assert section.startswith("# Benchmarks\n\n<!-- speed:begin -->\n## Issue 16")
    assert "| | fallback | after |" in section
    again = subprocess.run(
        [sys.executable, "-m", "benchmarks.speed", "--from-json", str(raw)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout == out  # the same tables, from the saved figures
    results = json.loads(raw.read_text())
    assert set(results) == {"fallback", "after"}
    after, fallback = results["after"]["streaming"], results["fallback"]["streaming"]
    assert after["magic_requests"] < fallback["magic_requests"]
    assert after["delay_ms"]["n"] == fallback["delay_ms"]["n"] == 2
    assert results["after"]["trivial"]["magic"]["n"] == 3
    for variant in results.values():
        assert variant["transfer"]["push_mb_per_s"] > 0
        assert variant["transfer"]["pull_mb_per_s"] > 0
