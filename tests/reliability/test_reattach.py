"""Re-attach: run ids are always shown, and a run renders again by id, even after a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output
from testkit import magics_of

RICH_CELL = (
    "%%sandbox --out r\nfrom IPython.display import HTML, display\n"
    "print('first line', flush=True)\ndisplay(HTML('<i>shown</i>'))\n"
    "print('second line')\n{'answer': 42}"
)


def _run_cell(ip: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


def _text(captured: Any) -> str:
    """Everything a cell showed, as text."""
    parts = [captured.stdout, captured.stderr]
    parts += [str(output.data.get("text/plain", "")) for output in captured.outputs]
    return "\n".join(parts)


def _remote_outputs(captured: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """The remote code's stdout lines and display outputs, without sandbox_magic's own."""
    lines = [line for line in captured.stdout.splitlines() if line.endswith("line")]
    displays = [
        output.data
        for output in captured.outputs
        if "sandbox-magic-" not in str(output.data.get("text/html", ""))
    ]
    return lines, displays


def _reload(
    ip: InteractiveShell, point: Callable[..., Any], url: str | None, token: str | None
) -> Any:
    """Unload and load the extension again: a fresh controller, session and I/O loop."""
    ip.run_line_magic("unload_ext", "sandbox_magic")
    ip.run_line_magic("load_ext", "sandbox_magic")
    return point(url, token)


@pytest.mark.parametrize("seconds", [0.0, 0.6], ids=["fast", "slow"])
def test_every_run_id_shows_in_the_cell_summary(shell: InteractiveShell, seconds: float) -> None:
    result, captured = _run_cell(
        shell, f"%%sandbox --out r\nimport time\ntime.sleep({seconds})\n'done'"
    )
    assert result.success, result.error_in_exec
    run_id = shell.user_ns["r"].id
    assert f"run {run_id}" in _text(captured)


def test_failed_and_cancelled_runs_show_their_id_too(shell: InteractiveShell) -> None:
    result, captured = _run_cell(shell, "%%sandbox\n1 / 0")
    assert not result.success
    run_id = result.error_in_exec.run_id
    assert run_id
    assert f"run {run_id}" in _text(captured)


def test_attach_renders_a_finished_run_again(shell: InteractiveShell) -> None:
    first, shown = _run_cell(shell, RICH_CELL)
    assert first.success, first.error_in_exec
    run_id = shell.user_ns["r"].id
    again, reshown = _run_cell(shell, f"%sandbox attach {run_id}")
    assert again.success, again.error_in_exec
    assert _remote_outputs(reshown) == _remote_outputs(shown)
    assert _remote_outputs(shown)[0] == ["first line", "second line"]
    assert pretty(again.result) == pretty(first.result)
    assert f"run {run_id}" in _text(reshown)


def test_attach_follows_a_background_run_that_is_still_going(shell: InteractiveShell) -> None:
    magics = magics_of(shell)
    started, _ = _run_cell(
        shell,
        "%%sandbox --background\nimport time\nprint('early line', flush=True)\n"
        "time.sleep(1.5)\nprint('late line')\n'bg'",
    )
    assert started.success, started.error_in_exec
    [entry] = magics.controller.background.runs.values()
    assert not entry.done
    attached, captured = _run_cell(shell, f"%sandbox attach {entry.run.id}")
    assert attached.success, attached.error_in_exec
    assert _remote_outputs(captured)[0] == ["early line", "late line"]
    assert pretty(attached.result) == "'bg'"


def test_a_new_session_lists_and_attaches_runs_from_the_journal(
    ip: InteractiveShell, point_shell: Callable[..., Any], live_server: Any
) -> None:
    # keep_sandbox: a session that closes deletes its sandbox (and so ends its runs)
    # unless told to keep it; a run can only go on through a restart in a kept one.
    point_shell(live_server.url, live_server.token, keep_sandbox=True)
    first, shown = _run_cell(ip, RICH_CELL)
    assert first.success, first.error_in_exec
    done_id = ip.user_ns["r"].id
    _run_cell(
        ip,
        "%%sandbox --background\nimport time\nprint('early line', flush=True)\n"
        "time.sleep(2)\nprint('late line')\n'after restart'",
    )
    running_id = next(iter(magics_of(ip).controller.background.runs))

    magics = _reload(ip, point_shell, live_server.url, live_server.token)  # like a restart
    magics.keep_sandbox = False  # this session may clean up after the test
    listed, _ = _run_cell(ip, "%sandbox runs --local")
    table = repr(listed.result)
    assert done_id in table
    assert running_id in table

    followed, captured = _run_cell(ip, f"%sandbox attach {running_id}")
    assert followed.success, followed.error_in_exec
    assert pretty(followed.result) == "'after restart'"
    assert _remote_outputs(captured)[0] == ["early line", "late line"]
    again, reshown = _run_cell(ip, f"%sandbox attach {done_id}")
    assert _remote_outputs(reshown) == _remote_outputs(shown)
    assert pretty(again.result) == pretty(first.result)


@pytest.mark.slow
def test_runs_of_the_embedded_server_attach_after_a_restart(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.delenv("NULLSPACE_API_URL", raising=False)
    monkeypatch.delenv("NULLSPACE_API_KEY", raising=False)
    point_shell(None, None)
    first, shown = _run_cell(ip, RICH_CELL)
    assert first.success, first.error_in_exec
    run_id = ip.user_ns["r"].id

    magics = _reload(ip, point_shell, None, None)  # stops the embedded server
    session = magics.controller.active_session
    assert session is None or session.embedded is None
    again, reshown = _run_cell(ip, f"%sandbox attach {run_id}")
    assert again.success, again.error_in_exec
    assert _remote_outputs(reshown) == _remote_outputs(shown)
    assert pretty(again.result) == pretty(first.result)


def test_a_run_ended_by_closing_its_session_says_so_on_attach(
    ip: InteractiveShell, point_shell: Callable[..., Any], live_server: Any
) -> None:
    point_shell(live_server.url, live_server.token, keep_sandbox=False)
    _run_cell(ip, "%%sandbox --background\nimport time\ntime.sleep(30)")
    running_id = next(iter(magics_of(ip).controller.background.runs))
    _reload(ip, point_shell, live_server.url, live_server.token)  # deletes its sandbox
    attached, captured = _run_cell(ip, f"%sandbox attach {running_id}")
    assert attached.success, attached.error_in_exec
    assert f"Remote run {running_id} ended cancelled: the sandbox was deleted" in _text(captured)
