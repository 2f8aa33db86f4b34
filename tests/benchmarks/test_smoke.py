"""The benchmark command runs end to end in its tiny configuration and writes its files.

Timings are not compared with anything (they depend on the machine); what the run
measures that does not depend on it is: which modules ``%load_ext`` imports, and how
many polls a silent run costs against a fixed 1 s poll.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], str]:
    out = tmp_path_factory.mktemp("bench")
    json_path, markdown_path = out / "results.json", out / "BENCHMARKS.md"
    command = [sys.executable, "-m", "benchmarks", "--quick"]
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
    return json.loads(json_path.read_text()), markdown_path.read_text()


def test_quick_run_writes_every_case_and_the_machine(
    quick_run: tuple[dict[str, object], str],
) -> None:
    report, _ = quick_run
    assert report["errors"] == {}
    machine = report["machine"]
    assert isinstance(machine, dict)
    for key in ("date", "cpu_model", "logical_cores", "memory_gb", "python"):
        assert machine[key]
    cases = report["cases"]
    assert isinstance(cases, dict)
    assert set(cases) >= {"extension_load", "trivial", "polling", "bridge", "local_server"}


def test_quick_run_has_medians_and_p95_for_the_side_by_side_figures(
    quick_run: tuple[dict[str, object], str],
) -> None:
    report, _ = quick_run
    cases = report["cases"]
    assert isinstance(cases, dict)
    trivial = cases["trivial"]
    for method in ("magic", "magic_quiet", "floor", "sdk_wait_for_run", "sdk_run_code"):
        assert {"median", "p95", "n"} <= set(trivial[method])
    assert "overhead_magic_minus_floor_ms" in trivial
    for entry in cases["polling"].values():
        assert {"magic", "fixed_1s_poll", "request_ratio"} <= set(entry)
        assert entry["magic"]["requests"]["n"] >= 1
    assert "median" in cases["bridge"]["combined"]["render_ms"]
    assert "peak_mb" in cases["bridge"]["stdout_50mb_truncated"]
    local = cases["local_server"]
    assert {"warm_new_context", "cold_new_context", "fresh_notebook", "throughput", "memory"} <= (
        set(local)
    )
    assert "median" in cases["extension_load"]["load_ext_ms"]


def test_quick_run_marks_each_target_and_renders_markdown(
    quick_run: tuple[dict[str, object], str],
) -> None:
    report, markdown = quick_run
    targets = report["targets"]
    assert isinstance(targets, list)
    assert len(targets) == 7
    for row in targets:
        assert row["met"] in (True, False, None)
    assert "## Targets" in markdown
    assert "## Machine" in markdown
    assert "python -m benchmarks" in markdown


def test_quick_run_measures_what_does_not_depend_on_the_machine(
    quick_run: tuple[dict[str, object], str],
) -> None:
    report, _ = quick_run
    cases = report["cases"]
    assert isinstance(cases, dict)
    load = cases["extension_load"]
    assert load["heavy_modules_imported"] == []  # httpx, ipywidgets wait for the first cell
    assert 0 < load["modules_imported"] < 400
    for entry in cases["polling"].values():
        # Fast at first, then backing off: a poll stuck at its 20 ms start would cost
        # some fifty reads per second of run; the adaptive one stays within a few
        # times the reads of polling every second.
        assert 0 < entry["request_ratio"] <= 3, entry
