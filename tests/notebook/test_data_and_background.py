"""--push/--pull, --save-artifacts, --background and %sandbox wait, against the real server."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from testkit import magics_of

from sandbox_magic.client import Run


def run_cell(shell: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, captured


def test_push_and_pull_round_trip_a_dataframe(shell: InteractiveShell) -> None:
    frame = pd.DataFrame(
        {
            "x": np.arange(1000),
            "label": [f"row {i}" for i in range(1000)],
            "v": np.linspace(0, 1, 1000),
        }
    )
    shell.user_ns["frame"] = frame
    result, _ = run_cell(
        shell, "%%sandbox --push frame --pull doubled\ndoubled = frame.assign(x=frame.x * 2)"
    )
    assert result.success, result.error_in_exec
    pd.testing.assert_frame_equal(shell.user_ns["doubled"], frame.assign(x=frame.x * 2))


def test_push_of_a_missing_or_unsupported_variable_is_refused(shell: InteractiveShell) -> None:
    result, _ = run_cell(shell, "%%sandbox --push nothing_here\n1")
    assert "no local variable named nothing_here" in str(result.error_in_exec)
    shell.user_ns["handle"] = open  # a function cannot travel
    result, _captured = run_cell(shell, "%%sandbox --push handle\n1")
    assert not result.success
    assert "builtin_function_or_method" in str(result.error_in_exec)


def test_save_artifacts_downloads_and_verifies(shell: InteractiveShell, tmp_path: Path) -> None:
    target = tmp_path / "downloads"
    source = (
        f"%%sandbox --save-artifacts {target} --out r\n"
        "from pathlib import Path\nPath('report.txt').write_text('hello artifacts')\n"
    )
    result, captured = run_cell(shell, source)
    assert result.success, result.error_in_exec
    saved = target / "report.txt"
    assert saved.read_text() == "hello artifacts"
    assert any("sha256 verified" in o.data.get("text/plain", "") for o in captured.outputs)
    listing = "".join(o.data.get("text/plain", "") for o in captured.outputs)
    assert "report.txt" in listing
    [announced] = shell.user_ns["r"].execution.artifacts
    assert announced.sha256 == hashlib.sha256(b"hello artifacts").hexdigest()


def test_background_run_returns_at_once_and_lands_its_outputs(shell: InteractiveShell) -> None:
    magics = magics_of(shell)
    magics.status_view = "html"
    result, _captured = run_cell(
        shell,
        "%%sandbox --background\nimport time\nprint('working', flush=True)\ntime.sleep(1.5)\n"
        "print('done')\n'bg value'",
    )
    assert result.success
    assert result.result is None
    [entry] = magics.controller.background.runs.values()
    assert not entry.done  # the cell came back while the run still goes on
    local, _ = run_cell(shell, "3 + 4")  # the kernel is free meanwhile
    assert local.result == 7
    _, waited = run_cell(shell, "%sandbox wait --timeout 60")
    assert entry.done
    final: Run = entry.future.result()
    assert final.status == "succeeded"
    assert f"{final.id}: succeeded" in waited.stdout
    bundle = entry.final_bundle
    assert bundle is not None
    assert "working" in bundle["text/plain"]
    assert "done" in bundle["text/plain"]
    assert "'bg value'" in bundle["text/plain"]
    assert final.id in bundle["text/plain"]


def test_background_cannot_pull(shell: InteractiveShell) -> None:
    result, _ = run_cell(shell, "%%sandbox --background --pull x\nx = 1")
    assert "--background cannot be combined" in str(result.error_in_exec)


@pytest.mark.parametrize("unknown", ["run_doesnotexist"])
def test_wait_for_an_unknown_run_is_a_usage_error(shell: InteractiveShell, unknown: str) -> None:
    result, _ = run_cell(shell, f"%sandbox wait {unknown}")
    assert "Not a background run" in str(result.error_in_exec)


def test_cancel_button_of_a_background_run_cancels_it(shell: InteractiveShell) -> None:
    magics = magics_of(shell)
    magics.status_view = "widget"
    result, _ = run_cell(shell, "%%sandbox --background\nimport time\ntime.sleep(60)")
    assert result.success
    [entry] = magics.controller.background.runs.values()
    assert entry.view.on_cancel is not None  # the button is shown
    entry.view._clicked(None)  # what a click does
    run_cell(shell, "%sandbox wait --timeout 60")
    assert entry.future.result().status == "cancelled"


def test_concurrent_background_runs_all_land(shell: InteractiveShell) -> None:
    magics = magics_of(shell)
    magics.status_view = "html"
    for name in ("a", "b", "c"):
        source = f"%%sandbox --background --context {name}\nimport time\ntime.sleep(1)\n'{name}'"
        run_cell(shell, source)
    background = magics.controller.background
    assert len(background.runs) == 3
    run_cell(shell, "%sandbox wait --timeout 120")
    finals = background.results()
    assert sorted(run.status for run in finals.values()) == ["succeeded"] * 3
    values = {
        run.execution.main_result.text for run in finals.values() if run.execution.main_result
    }
    assert values == {"'a'", "'b'", "'c'"}
    bundles = [entry.final_bundle for entry in background.runs.values()]
    assert all(bundle is not None and "succeeded" in bundle["text/plain"] for bundle in bundles)
