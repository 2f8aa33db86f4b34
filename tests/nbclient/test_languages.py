"""``%%sandbox --language NAME`` in a real notebook, for every language of the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
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


def _offered(server: Any) -> list[str]:
    health = httpx.get(f"{server.url}/healthz", timeout=30).json()
    return list(health["languages"]["offered"])


def _run_languages(server: Any, tmp_path: Path, names: list[str]) -> None:
    cells = ["%load_ext sandbox_magic"]
    cells += [f"%%sandbox --language {name}\n{CELLS[name][0]}" for name in names]
    executed = run_notebook(tmp_path, cells, remote_env(tmp_path, server), timeout=300)
    for index, name in enumerate(names, start=1):
        assert CELLS[name][1] in executed.stdout(index), (name, executed.outputs(index))
        assert not [o for o in executed.outputs(index) if o.output_type == "error"], name


@pytest.mark.slow
def test_each_language_runs_in_a_notebook(live_server: Any, tmp_path: Path) -> None:
    # On the suite's server: confined (bubblewrap) or not, as the run chose.
    offered = _offered(live_server)
    assert set(CELLS) <= set(offered), offered
    _run_languages(live_server, tmp_path, list(CELLS))
