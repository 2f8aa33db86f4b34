"""``python -m benchmarks classroom --quick`` runs end to end and writes its section.

Only the shape is checked (timings depend on the machine): every case has a median
and a p95, the three ratios are there with their targets, and BENCHMARKS.md gets one
classroom section, replaced (not repeated) by a second write.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.classroom import TARGETS, write_section

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_quick_classroom_run(tmp_path: Path) -> None:
    json_path, markdown_path = tmp_path / "classroom.json", tmp_path / "BENCHMARKS.md"
    markdown_path.write_text("# Benchmarks\n\nearlier text\n")
    command = [sys.executable, "-m", "benchmarks", "classroom", "--quick"]
    command += ["--json", str(json_path), "--markdown", str(markdown_path)]
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    results = json.loads(json_path.read_text())
    report = results["runs"][0]["report"]
    for case in ("alone", "alone_paced", "human", "back_to_back", "cpu_loops"):
        assert report[case]["n"] > 0
        assert 0 < report[case]["median"] <= report[case]["p95"]
    assert set(report["ratios"]) == set(TARGETS)
    paced = report["ratios"]["human"]
    assert paced["reference"] == "alone_paced"
    expected = report["human"]["p95"] / report["alone_paced"]["median"]
    assert paced["p95_over_reference_median"] == round(expected, 2)
    assert report["contexts_at_once"]["failed"] == 0
    assert report["memory"]["kernels"] >= report["students"]
    text = markdown_path.read_text()
    assert text.startswith("# Benchmarks\n\nearlier text")
    assert "30 back to back" in text
    write_section(markdown_path, "<!-- classroom:start -->\nnew\n<!-- classroom:end -->")
    assert markdown_path.read_text().count("classroom:start") == 1
    assert "earlier text" in markdown_path.read_text()
