"""Background runs and data transfer in a real kernel, verified in the saved notebook."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from sandbox_magic.demo.runner import execute_notebook

pytestmark = pytest.mark.slow


def execute(tmp_path: Path, live_server: Any, sources: list[str]) -> Any:
    path = tmp_path / "features.ipynb"
    notebook = new_notebook(cells=[new_code_cell(s) for s in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(notebook, path)
    env = dict(os.environ)
    env.update(
        NULLSPACE_API_URL=live_server.url,
        NULLSPACE_API_KEY=live_server.token,
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
    )
    executed = execute_notebook(path, env=env, cwd=tmp_path, timeout=240)
    nbformat.write(executed, path)
    return nbformat.read(path, as_version=4)  # what was saved, read back


def test_background_outputs_land_in_the_cell_that_started_them(
    tmp_path: Path, live_server: Any
) -> None:
    saved = execute(
        tmp_path,
        live_server,
        [
            "%load_ext sandbox_magic",
            "%%sandbox --background\nimport time\nprint('slow part done', flush=True)\n"
            "time.sleep(1.5)\n'background value'",
            "local = 6 * 7\nlocal",
            "%sandbox wait --timeout 120",
        ],
    )
    started, local, waited = saved.cells[1], saved.cells[2], saved.cells[3]
    assert local.outputs[0]["data"]["text/plain"] == "42"  # the kernel was free meanwhile
    [final] = [o for o in started.outputs if o.output_type == "display_data"]
    text = final["data"]["text/plain"]
    assert "slow part done" in text
    assert "'background value'" in text
    assert "succeeded" in text
    assert "text/html" in final["data"]
    assert "succeeded" in "".join(o.get("text", "") for o in waited.outputs)
    raw = (tmp_path / "features.ipynb").read_text()
    assert "application/vnd.jupyter.widget-view+json" not in raw
    assert live_server.token not in raw


def test_push_and_pull_round_trip_a_dataframe_in_a_kernel(tmp_path: Path, live_server: Any) -> None:
    saved = execute(
        tmp_path,
        live_server,
        [
            "%load_ext sandbox_magic",
            "import pandas as pd\n"
            "frame = pd.DataFrame({'a': range(500), 'b': [f'x{i}' for i in range(500)]})",
            "%%sandbox --push frame --pull back\nback = frame.assign(c=frame.a ** 2)",
            "import pandas.testing as pdt\n"
            "pdt.assert_frame_equal(back, frame.assign(c=frame.a ** 2))\nback.shape",
        ],
    )
    assert saved.cells[3].outputs[-1]["data"]["text/plain"] == "(500, 3)"


def test_pulling_something_unsafe_is_refused_clearly(tmp_path: Path, live_server: Any) -> None:
    path_cell = (
        "%%sandbox --pull thing\nclass Sneaky:\n    def __reduce__(self):\n"
        "        return (print, ('pwned',))\nthing = Sneaky()"
    )
    saved = execute(
        tmp_path,
        live_server,
        [
            "%load_ext sandbox_magic",
            "try:\n    get_ipython().run_cell_magic('sandbox', '--pull thing', "
            + repr(path_cell.split("\n", 1)[1])
            + ")\nexcept Exception as exc:\n    print(type(exc).__name__, exc)",
            "'thing' in globals()",
        ],
    )
    message = "".join(o.get("text", "") for o in saved.cells[1].outputs)
    assert "TransferError" in message
    assert "Sneaky" in message
    assert "pwned" not in message
    assert saved.cells[2].outputs[0]["data"]["text/plain"] == "False"
