"""The streamed-versus-runs benchmark runs end to end in a tiny configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_benchmark_prints_every_method_side_by_side_with_ratios(tmp_path: Path) -> None:
    out = tmp_path / "streamed.json"
    command = [sys.executable, "-m", "benchmarks.streamed_vs_runs", "--rounds", "2"]
    command += ["--warmup", "1", "--json", str(out)]
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=280, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for name in ("client run+poll", "client streamed", "magic runs", "magic streamed"):
        assert re.search(rf"{re.escape(name)}\s+median\s+\d+\.\d\d ms", done.stdout), done.stdout
    assert re.search(r"ratio streamed / runs \(magic cell\): \d+\.\d\d", done.stdout)
    results = json.loads(out.read_text())
    assert results["requests_per_cell"]["client streamed"] == 1.0  # one POST, one stream
    assert results["requests_per_cell"]["client run+poll"] >= 2.0  # a submit and a poll
    assert all(summary["n"] == 2 for summary in results["methods"].values())
