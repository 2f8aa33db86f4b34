"""The three shipped notebooks, executed headless with nbclient on the embedded default.

Each test asserts what the notebook shows, cell by cell, not merely that it ran.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pytest

from sandbox_magic.demo.runner import execute_notebook

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """A kernel environment with no server configured: the embedded default is used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NULLSPACE_")}
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    return env


def run_notebook(name: str, tmp_path: Path, env: dict[str, str]) -> Any:
    copy = tmp_path / name
    shutil.copy(NOTEBOOKS / name, copy)
    executed = execute_notebook(copy, env=env, cwd=tmp_path, timeout=300)
    nbformat.write(executed, tmp_path / f"executed-{name}")
    return executed


def cell(notebook: Any, fragment: str) -> Any:
    """The code cell whose source contains ``fragment``."""
    matches = [c for c in notebook.cells if c.cell_type == "code" and fragment in c.source]
    assert len(matches) == 1, f"{len(matches)} cells contain {fragment!r}"
    return matches[0]


def stdout(code_cell: Any) -> str:
    return "".join(
        o.text for o in code_cell.outputs if o.output_type == "stream" and o.name == "stdout"
    )


def out(code_cell: Any) -> dict[str, Any]:
    [result] = [o for o in code_cell.outputs if o.output_type == "execute_result"]
    return dict(result.data)


def displays(code_cell: Any) -> list[dict[str, Any]]:
    return [dict(o.data) for o in code_cell.outputs if o.output_type == "display_data"]


def error(code_cell: Any) -> Any:
    [failure] = [o for o in code_cell.outputs if o.output_type == "error"]
    return failure


def summaries(code_cell: Any) -> list[str]:
    return [d["text/plain"] for d in displays(code_cell) if " · run run" in d.get("text/plain", "")]


def test_quickstart_shows_every_kind_of_output(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    nb = run_notebook("quickstart.ipynb", tmp_path, embedded_env)

    first = cell(nb, "Hello from the sandbox")
    assert "Hello from the sandbox, Python 3." in stdout(first)
    assert out(first)["text/plain"] == "42"
    notices = [d["text/plain"] for d in displays(first)]
    assert any("Started the embedded local sandbox server" in n for n in notices)
    assert summaries(first), "every run shows its summary line with the run id"

    plot = cell(nb, "Computed in the sandbox")
    png = next(d["image/png"] for d in displays(plot) if "image/png" in d)
    assert base64.b64decode(png).startswith(b"\x89PNG")

    table = out(cell(nb, "df.describe()"))
    assert "<table" in table["text/html"]
    assert "height" in table["text/plain"]

    formula = out(cell(nb, "sp.Integral"))
    assert "\\sqrt{\\pi}" in formula["text/latex"]

    failure = error(cell(nb, "ratios = [1, 2, 0]"))
    assert failure.ename == "ZeroDivisionError"
    assert any("ZeroDivisionError" in line for line in failure.traceback)

    record = out(cell(nb, "run.status, run.execution"))
    assert record["text/plain"].startswith("('succeeded', ('mean height:")
    runs = out(cell(nb, "%sandbox runs"))
    assert runs["text/plain"].count("succeeded") >= 4

    saved = (tmp_path / "executed-quickstart.ipynb").read_text()
    assert "application/vnd.jupyter.widget-view+json" not in saved
    assert '"widgets"' not in saved


def test_teaching_demo_keeps_students_apart_and_survives_a_timeout(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    nb = run_notebook("teaching-demo.ipynb", tmp_path, embedded_env)

    assert stdout(cell(nb, 'name = "Alice"')) == "Alice scored 90\n"
    assert "Alice still has 90" in stdout(cell(nb, "still has"))
    leak = error(cell(nb, "Bob never defined score"))
    assert leak.ename == "NameError"

    timeout = error(cell(nb, "--timeout 2"))
    assert "timed out after 2 s" in timeout.evalue
    assert stdout(cell(nb, "still alive")) == "still alive, score = 90\n"

    loop = cell(nb, "for step in range(1, 6)")
    assert stdout(loop).splitlines() == [
        f"step {i}: total {sum(range(1, i + 1))}" for i in range(1, 6)
    ]
    assert out(loop)["text/plain"] == "15"

    assert error(cell(nb, "average([])")).ename == "ZeroDivisionError"
    contexts = out(cell(nb, "%sandbox contexts"))["text/plain"]
    assert "alice" in contexts
    assert "bob" in contexts


def test_data_exploration_moves_data_both_ways_and_lists_artifacts(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    nb = run_notebook("data-exploration.ipynb", tmp_path, embedded_env)

    pushed = cell(nb, "--push sales")
    assert "5,000 rows arrived in the sandbox" in stdout(pushed)
    assert "revenue" in out(pushed)["text/html"]

    pulled = out(cell(nb, "# back in the local kernel"))["text/plain"]
    assert pulled.endswith("'DataFrame')")

    plot = cell(nb, "Weekly revenue by region")
    assert any("image/png" in d for d in displays(plot))
    listing = next(d["text/plain"] for d in displays(plot) if "artifacts:" in d["text/plain"])
    assert "weekly_revenue.csv" in listing
    assert "weekly_revenue.png" in listing
    table = out(cell(nb, "%sandbox artifacts"))["text/plain"]
    assert "weekly_revenue.csv" in table

    streamed = stdout(cell(nb, "mean revenue"))
    assert [line.split(":")[0].strip() for line in streamed.splitlines()] == [
        "north",
        "south",
        "east",
        "west",
    ]


def _stderr_rendered(code_cell: Any) -> str:
    r"""Stream text as a frontend shows it: ``\r`` returns to the start of the line."""
    text = "".join(
        o.text for o in code_cell.outputs if o.output_type == "stream" and o.name == "stderr"
    )
    lines = []
    for line in text.split("\n"):
        shown = ""
        for frame in line.split("\r"):
            shown = frame + shown[len(frame) :]
        lines.append(shown)
    return "\n".join(lines)


def test_progress_and_media_notebook_shows_updates_bars_sound_and_charts(
    tmp_path: Path, embedded_env: dict[str, str]
) -> None:
    nb = run_notebook("progress-and-media.ipynb", tmp_path, embedded_env)

    progress = cell(nb, "Training: 0%")
    texts = [d.get("text/plain") for d in displays(progress)]
    assert "'Training: 100%'" in texts
    assert not any("Training: 25%" in str(t) for t in texts)
    assert "sandbox-magic-summary" in displays(progress)[0].get("text/html", "")

    bars = cell(nb, "tqdm.auto")
    shown = _stderr_rendered(bars)
    assert [line for line in shown.splitlines() if line.startswith("Epochs")] == [
        next(line for line in shown.splitlines() if line.startswith("Epochs: 100%"))
    ]
    assert stdout(bars) == "total 190\n"

    sound = out(cell(nb, "Audio("))
    assert 'src="data:audio/wav;base64,' in sound["text/html"]

    chart = out(cell(nb, "alt.Chart"))
    assert chart["application/vnd.vegalite.v5+json"]["data"]
    assert stdout(cell(nb, "_ * 2")) == ""
    assert out(cell(nb, "_ * 2"))["text/plain"] == "90"

    assert "running remotely:" in stdout(cell(nb, "platform.python_version"))
    assert summaries(cell(nb, "platform.python_version"))
    assert stdout(cell(nb, "still remote")) == "still remote, answer = 42\n"
    assert stdout(cell(nb, "local again")) == (
        "local again; a remote variable is not here: False\n"
    )
