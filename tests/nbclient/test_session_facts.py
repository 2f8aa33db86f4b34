"""``%sandbox connect``, ``wait`` and ``attach`` tell the truth, in real kernels (nbclient)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from nbkit import RAISES, Cell, ExecutedNotebook, kernel_env, remote_env, run_notebook

from sandbox_magic.client import Run
from sandbox_magic.notebook.magics import SandboxMagics
from sandbox_magic.notebook.status import TextStatusView


def _errors(nb: ExecutedNotebook, index: int) -> list[Any]:
    return [o for o in nb.outputs(index) if o.output_type == "error"]


def _text(nb: ExecutedNotebook, index: int) -> str:
    parts = [nb.stdout(index), nb.stderr(index)]
    parts += [str(b.get("text/plain", "")) for b in nb.bundles(index)]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def connecting(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> ExecutedNotebook:
    home = tmp_path_factory.mktemp("connect")
    env = kernel_env(home, NULLSPACE_API_KEY=live_server.token, TEST_TOKEN=live_server.token)
    url = live_server.url
    cells = [
        Cell("%load_ext sandbox_magic"),
        Cell("%sandbox connect http://127.0.0.1:9", (RAISES,)),  # 1: nothing listens
        Cell("%sandbox connect not-a-url", (RAISES,)),  # 2
        Cell("import os\nos.environ['NULLSPACE_API_KEY'] = 'wrong-key'"),
        Cell(f"%sandbox connect {url}", (RAISES,)),  # 4: wrong key
        Cell("os.environ['NULLSPACE_API_KEY'] = os.environ['TEST_TOKEN']"),
        Cell(f"%sandbox connect {url}"),  # 6
        Cell("%%sandbox\nprint('remote ok')"),  # 7
        Cell("%sandbox connect --embedded"),  # 8
        Cell("%%sandbox\nprint('embedded ok')"),  # 9
        Cell("del os.environ['NULLSPACE_API_KEY']"),
        Cell(f"%sandbox connect {url}", (RAISES,)),  # 11: headless, no key
    ]
    return run_notebook(home, cells, env, timeout=180)


def test_connect_to_nothing_fails_at_once(connecting: ExecutedNotebook) -> None:
    (error,) = _errors(connecting, 1)
    assert "Cannot reach the sandbox server at http://127.0.0.1:9" in error.evalue
    assert "Connected" not in _text(connecting, 1)


def test_connect_to_a_malformed_url_fails(connecting: ExecutedNotebook) -> None:
    (error,) = _errors(connecting, 2)
    assert "must start with http:// or https://" in error.evalue


def test_connect_with_a_wrong_key_fails_like_a_cell(connecting: ExecutedNotebook) -> None:
    (error,) = _errors(connecting, 4)
    assert error.ename == "AuthenticationError"
    assert "not accepted" in error.evalue
    shown = _text(connecting, 4) + "\n".join(error.traceback)
    assert "wrong-key" not in shown


def test_connect_checks_then_switches_and_back_to_embedded(connecting: ExecutedNotebook) -> None:
    assert "Connected to http://127.0.0.1:" in connecting.stdout(6)
    assert connecting.stdout(7) == "remote ok\n"
    assert "embedded local server" in connecting.stdout(8)
    assert connecting.stdout(9) == "embedded ok\n"
    assert "Started the embedded local sandbox server" in _text(connecting, 9)


def test_connect_headless_without_a_key_says_why(connecting: ExecutedNotebook) -> None:
    (error,) = _errors(connecting, 11)
    assert error.ename == "SandboxError"
    assert "no API key" in error.evalue
    assert "NULLSPACE_API_KEY" in error.evalue
    assert "StdinNotImplementedError" not in "\n".join(error.traceback)


def test_wait_reports_each_background_run_once(live_server: Any, tmp_path: Path) -> None:
    cells = [
        "%load_ext sandbox_magic",
        "%%sandbox --background\nimport time\ntime.sleep(0.3)",
        "%sandbox wait",
        "%sandbox wait",
    ]
    executed = run_notebook(tmp_path, cells, remote_env(tmp_path, live_server))
    assert re.search(r"run_\w+: succeeded", executed.stdout(2))
    assert "No background runs to wait for" in executed.stdout(3)


def test_attach_from_a_new_kernel_shows_the_same_time_and_context_name(
    live_server: Any, tmp_path: Path
) -> None:
    env = remote_env(tmp_path, live_server)
    first = run_notebook(
        tmp_path,
        [
            "%load_ext sandbox_magic",
            "%%sandbox --context teaching --out r\nimport time\ntime.sleep(0.6)",
            "print(r.id)",
        ],
        env,
        name="first.ipynb",
    )
    run_id = first.stdout(2).strip()
    (summary,) = [b for b in first.bundles(1) if "run time" in str(b.get("text/plain"))]
    again = run_notebook(
        tmp_path, ["%load_ext sandbox_magic", f"%sandbox attach {run_id}"], env, name="again.ipynb"
    )
    (attached,) = [b for b in again.bundles(1) if "run time" in str(b.get("text/plain"))]
    duration = re.search(r"in ([\d.]+ s) run time", summary["text/plain"])
    assert duration is not None
    assert f"in {duration.group(1)} run time" in attached["text/plain"]
    assert "context teaching" in attached["text/plain"]
    assert float(duration.group(1).split()[0]) >= 0.6


def test_terminal_prints_one_line_per_run_end(ip: InteractiveShell) -> None:
    ended = Run.from_json(
        {
            "id": "run_1",
            "status": "succeeded",
            "started_at": "2026-01-01T00:00:00.000Z",
            "completed_at": "2026-01-01T00:00:02.000Z",
        }
    )
    view = TextStatusView(delay=0.0)
    with capture_output() as cap:
        view.start(Run.from_json({"id": "run_1", "status": "running"}))
        view.update(ended)
        view.finish(ended)
    assert "succeeded" not in cap.stderr
    (summary,) = cap.outputs
    assert summary.data["text/plain"].startswith("✓ succeeded in 2.00 s run time · run run_1")


def test_cell_magic_help_shows_the_double_percent_usage() -> None:
    doc = SandboxMagics.sandbox_cell.__doc__ or ""
    assert "%%sandbox [--context CONTEXT]" in doc
    assert "sandbox_cell" not in doc
