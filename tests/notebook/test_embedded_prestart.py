"""The embedded server starts right after the cell that loads the extension."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from testkit import magics_of, wait_until


@pytest.fixture
def bare_shell(ip: InteractiveShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("NULLSPACE_API_URL", raising=False)
    monkeypatch.delenv("NULLSPACE_API_KEY", raising=False)
    yield ip
    ip.run_line_magic("unload_ext", "sandbox_magic")


def embedded_server(shell: InteractiveShell) -> Any:
    magics = magics_of(shell)
    session = magics.controller.active_session if magics.started else None
    server = session.embedded if session is not None else None
    return server if server is not None and server.running else None


def test_server_is_started_after_the_load_cell_and_stopped_on_unload(
    bare_shell: InteractiveShell,
) -> None:
    bare_shell.run_cell("%load_ext sandbox_magic")
    server = wait_until(lambda: embedded_server(bare_shell), timeout=60.0, what="the server")
    process = psutil.Process(server.pid)
    result = bare_shell.run_cell("%%sandbox --quiet\n40 + 2")
    assert pretty(result.result) == "42"
    assert embedded_server(bare_shell) is server  # the cell used the prestarted server
    bare_shell.run_line_magic("unload_ext", "sandbox_magic")
    process.wait(timeout=30)
    assert not process.is_running()
    bare_shell.run_line_magic("load_ext", "sandbox_magic")  # for the fixture's unload


def test_no_prestart_when_the_load_cell_configures_a_url(bare_shell: InteractiveShell) -> None:
    bare_shell.run_cell(
        "%load_ext sandbox_magic\n%config SandboxMagics.api_url = 'http://127.0.0.1:9'"
    )
    bare_shell.run_cell("pass")  # a later cell: the prestart decision was made before it
    assert not magics_of(bare_shell).started
