"""``%%sandbox --language NAME`` in a real notebook, for every language of the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from nbkit import remote_env, run_notebook

CELLS = {
    "r": ("cat('hello from R', 6 * 7, '\\n')", "hello from R 42"),
    "bash": ("echo hello from $((6 * 7)) bash", "hello from 42 bash"),
    "javascript": ("console.log('hello from js', 6 * 7)", "hello from js 42"),
    "typescript": (
        "const n: number = 6 * 7; console.log(`hello from ts ${n}`)",
        "hello from ts 42",
    ),
    "java": ('System.out.println("hello from java " + (6 * 7));', "hello from java 42"),
}


@pytest.mark.slow
def test_each_language_runs_in_a_notebook(live_server: Any, tmp_path: Path) -> None:
    cells = ["%load_ext sandbox_magic"]
    cells += [f"%%sandbox --language {name}\n{code}" for name, (code, _) in CELLS.items()]
    executed = run_notebook(tmp_path, cells, remote_env(tmp_path, live_server), timeout=300)
    for index, (name, (_, expected)) in enumerate(CELLS.items(), start=1):
        assert expected in executed.stdout(index), (name, executed.outputs(index))
        assert not [o for o in executed.outputs(index) if o.output_type == "error"], name
