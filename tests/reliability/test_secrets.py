"""Secrets: the API key and secret env values never show, wherever the remote code puts them.

The remote code below tries hard: it prints the secret, displays it as HTML and JSON,
returns it, raises it in an exception, and reads the server's own token file (or,
where the server confines it and the file is out of sight, echoes the key it was given).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output

from sandbox_magic.demo.runner import execute_notebook

SECRET = "s3cr3t-from-env-4f9a2c"
OTHER = "another-secret-77e1b0"

LEAKY_CELL = """
import os, sys
from IPython.display import HTML, display
value = os.environ['RELIABILITY_SECRET']
print('stdout:', value, flush=True)
print('stderr:', value, file=sys.stderr)
display(HTML(f'<b>{value}</b>'))
display({'application/json': {'nested': [value]}, 'text/plain': value}, raw=True)
print('key from the token file:',
      open(TOKEN_FILE).read().strip() if os.path.exists(TOKEN_FILE) else KEY)
print('key from the environment:', os.environ.get('SANDBOX_MAGIC_TOKEN'))
print('other:', os.environ['OTHER_SECRET'])
value
"""
ERROR_CELL = """
import os
raise RuntimeError('failed with ' + os.environ['RELIABILITY_SECRET'] + ' and ' + KEY)
"""


def _run_cell(ip: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


def _everything(result: Any, captured: Any) -> str:
    parts = [captured.stdout, captured.stderr]
    for output in captured.outputs:
        parts.append(repr(output.data))
        parts.append(repr(output.metadata))
    error = result.error_in_exec
    if error is not None:
        parts += [str(error), repr(error)]
        render = getattr(error, "_render_traceback_", None)
        if render is not None:
            parts += render()
    if result.result is not None:
        parts.append(repr(result.result))
        bundle = getattr(result.result, "_repr_mimebundle_", None)
        if bundle is not None:
            parts.append(repr(bundle()))
    return "\n".join(parts)


@pytest.fixture
def secrets_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELIABILITY_SECRET", SECRET)
    monkeypatch.setenv("OTHER_SECRET", OTHER)


def test_secrets_never_reach_outputs_errors_logs_or_config(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    live_server: Any,
    secrets_env: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key = live_server.token
    point_shell(live_server.url, key, secret_env=["OTHER_SECRET"], status_view="html")
    ip.user_ns.update(TOKEN_FILE=str(live_server.state_dir / "token"), KEY=key)
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []

    setup = f"%%sandbox\nTOKEN_FILE = {str(live_server.state_dir / 'token')!r}\nKEY = {key!r}"
    result, captured = _run_cell(ip, setup)
    assert result.success, result.error_in_exec
    seen.append(_everything(result, captured))

    result, captured = _run_cell(
        ip, f"%%sandbox --secret-env RELIABILITY_SECRET --out r{LEAKY_CELL}"
    )
    assert result.success, result.error_in_exec
    shown = _everything(result, captured)
    assert "stdout: [redacted]" in captured.stdout
    assert "stderr: [redacted]" in captured.stderr
    assert "key from the token file: [redacted]" in captured.stdout
    assert "key from the environment: None" in captured.stdout  # kernels do not get it
    assert "other: [redacted]" in captured.stdout
    assert "'[redacted]'" in pretty(result.result)
    seen.append(shown)
    record = ip.user_ns["r"]  # the record kept by --out is redacted too
    assert record.execution.logs.stdout[0] == "stdout: [redacted]\n"
    seen.append(repr(record))

    result, captured = _run_cell(ip, f"%%sandbox --secret-env RELIABILITY_SECRET{ERROR_CELL}")
    assert not result.success
    assert "failed with [redacted] and [redacted]" in str(result.error_in_exec)
    seen.append(_everything(result, captured))

    slow = "%%sandbox --secret-env RELIABILITY_SECRET\nimport os, time\n"
    slow += "print(os.environ['RELIABILITY_SECRET'], flush=True)\ntime.sleep(0.8)"
    result, captured = _run_cell(ip, slow)  # the live status line shows the latest line
    assert result.success, result.error_in_exec
    seen.append(_everything(result, captured))

    for line in ("config SandboxMagics", "sandbox status", "sandbox runs", "sandbox runs --local"):
        result, captured = _run_cell(ip, f"%{line}")
        assert result.success, (line, result.error_in_exec)
        seen.append(_everything(result, captured))
    seen.append(repr(ip.run_line_magic("config", "SandboxMagics.api_key")))
    seen.append(caplog.text)
    seen.append("\n".join(repr(record.args) for record in caplog.records))

    everything = "\n".join(seen)
    assert "[redacted]" in everything
    for secret in (SECRET, OTHER, key):
        assert secret not in everything


def _kernel_env(home: Path, server: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NULLSPACE_", "JPY_"))}
    (home / "data").mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    env.update(
        JUPYTER_DATA_DIR=str(home / "data"),
        TMPDIR=str(home / "tmp"),
        NULLSPACE_API_URL=server.url,
        NULLSPACE_API_KEY=server.token,
        RELIABILITY_SECRET=SECRET,
        OTHER_SECRET=OTHER,
    )
    return env


@pytest.mark.slow
def test_saved_notebook_holds_no_secret_and_shows_redacted_instead(
    live_server: Any, tmp_path: Path
) -> None:
    key = live_server.token
    token_file = str(live_server.state_dir / "token")
    sources = [
        "%load_ext sandbox_magic\n%config SandboxMagics.secret_env = ['OTHER_SECRET']",
        # A confined sandbox cannot read the token file: it is handed the key instead.
        f"%%sandbox --secret-env NULLSPACE_API_KEY\nimport os\nTOKEN_FILE = {token_file!r}\n"
        "KEY = os.environ['NULLSPACE_API_KEY']",
        f"%%sandbox --secret-env RELIABILITY_SECRET --out r{LEAKY_CELL}",
        "r",  # the run record, displayed by a local cell
        f"%%sandbox --secret-env RELIABILITY_SECRET{ERROR_CELL}",
        "%config SandboxMagics",
        "%sandbox status",
    ]
    notebook = nbformat.v4.new_notebook()
    for index, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        if index == 4:
            cell.metadata["tags"] = ["raises-exception"]
        notebook.cells.append(cell)
    path = tmp_path / "secrets.ipynb"
    nbformat.write(notebook, path)

    executed = execute_notebook(path, env=_kernel_env(tmp_path / "home", live_server), timeout=300)
    saved = tmp_path / "secrets.executed.ipynb"
    nbformat.write(executed, saved)
    text = saved.read_text()

    error = next(o for o in executed.cells[4].outputs if o.output_type == "error")
    assert error.ename == "RuntimeError"
    assert error.evalue == "failed with [redacted] and [redacted]"
    assert "stdout: [redacted]" in text
    assert "key from the token file: [redacted]" in text
    for secret in (SECRET, OTHER, key):
        assert secret not in text
