"""``python -m benchmarks.isolation --quick`` measures both modes and prints them side by side."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
def test_quick_isolation_benchmark_reports_both_modes(tmp_path: Path) -> None:
    out = tmp_path / "isolation.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.isolation", "--quick", "--json", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(out.read_text())
    for mode in ("bwrap", "none"):
        for key in ("warm_new_context_ms", "cold_new_context_ms", "trivial_run_ms"):
            assert results[mode][key]["median"] > 0
        assert results[mode]["memory_per_context"]["uss_mb"] > 0
    assert "bwrap/none" in completed.stdout
    assert "memory per context, USS MB" in completed.stdout
