"""A notebook executed by nbclient on a real kernel shows remote outputs like local ones."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
from nbclient.exceptions import CellExecutionError
from nbkit import Showcase, remote_env, run_notebook

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _execute_results(outputs: list[Any]) -> list[Any]:
    return [o for o in outputs if o.output_type == "execute_result"]


def test_print_goes_to_stdout_and_last_value_becomes_out(showcase: Showcase) -> None:
    cell = showcase.cell("print_and_out")
    assert showcase.stdout("print_and_out") == "hello from the sandbox\n"
    (result,) = _execute_results(cell.outputs)
    assert result.data["text/plain"] == "42"
    assert cell.execution_count is not None
    assert result.execution_count == cell.execution_count


def test_matplotlib_figure_is_saved_as_a_png(showcase: Showcase) -> None:
    pngs = [b["image/png"] for b in showcase.bundles("plot") if "image/png" in b]
    assert len(pngs) == 1
    assert base64.b64decode(pngs[0]).startswith(b"\x89PNG\r\n\x1a\n")


def test_dataframe_is_out_with_an_html_table(showcase: Showcase) -> None:
    (result,) = _execute_results(showcase.outputs("dataframe"))
    assert "<table" in result.data["text/html"]
    assert "right" in result.data["text/html"]
    assert "left" in result.data["text/plain"]


def test_sympy_expression_is_out_as_latex(showcase: Showcase) -> None:
    (result,) = _execute_results(showcase.outputs("sympy"))
    assert "\\int \\sqrt{x}" in result.data["text/latex"]


def test_remote_exception_is_an_error_output_with_the_remote_traceback(
    showcase: Showcase,
) -> None:
    (error,) = [o for o in showcase.outputs("remote_error") if o.output_type == "error"]
    assert error.ename == "ZeroDivisionError"
    assert error.evalue == "division by zero"
    coloured = "\n".join(error.traceback)
    assert "\x1b[" in coloured  # the remote colours are kept
    traceback = ANSI.sub("", coloured)
    assert "----> 4 divide(1, 0)" in traceback
    assert "----> 2     return a / b" in traceback
    assert "sandbox_magic" not in traceback  # no local frames of the magic


def test_remote_exception_stops_the_notebook_like_a_local_one(
    live_server: Any, tmp_path: Path
) -> None:
    marker = tmp_path / "ran-after-the-error"
    cells = [
        "%load_ext sandbox_magic",
        "%%sandbox\n1 / 0",
        f"open({str(marker)!r}, 'w').close()",
    ]
    with pytest.raises(CellExecutionError) as info:
        run_notebook(tmp_path, cells, remote_env(tmp_path, live_server))
    assert info.value.ename == "ZeroDivisionError"
    assert "division by zero" in str(info.value)
    assert not marker.exists(), "the cell after the failing one ran"


def test_no_raise_shows_the_traceback_and_the_cell_succeeds(showcase: Showcase) -> None:
    outputs = showcase.outputs("no_raise")
    assert not [o for o in outputs if o.output_type == "error"]
    assert "ValueError" in showcase.stderr("no_raise")
    assert "shown, not raised" in showcase.stderr("no_raise")
    # the next cell ran
    assert showcase.cell("out").execution_count is not None


def test_out_option_gives_a_local_cell_the_run_record(showcase: Showcase) -> None:
    (result,) = _execute_results(showcase.outputs("out"))
    assert result.data["text/plain"] == "4"
    status, run_id, logs = showcase.stdout("read_out").split(" ", 2)
    assert status == "succeeded"
    assert run_id.startswith("run_")
    assert logs.strip() == "('kept\\n',)"
    assert run_id in "".join(b.get("text/plain", "") for b in showcase.bundles("out"))


def test_execution_counts_follow_the_cells(showcase: Showcase) -> None:
    counts = [c.execution_count for c in showcase.executed.notebook.cells]
    assert counts == list(range(1, len(counts) + 1))
