"""%sandbox subcommands through a real IPython shell against the real local server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output
from testkit import magics_of, session_of, wait_until

LOOP = "import time\nfor i in range(600):\n    print('tick', i, flush=True)\n    time.sleep(0.1)\n"


def run_cell(shell: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, captured


def shown(result: Any, captured: Any) -> str:
    """Everything a cell showed, as text (its Out value's text and HTML included)."""
    parts = [captured.stdout, captured.stderr]
    parts += [o.data.get("text/plain", "") for o in captured.outputs]
    if result.result is not None:
        parts += [repr(result.result), getattr(result.result, "_repr_html_", str)()]
    if result.error_in_exec is not None:
        parts.append(str(result.error_in_exec))
    return "\n".join(parts)


def context_id(shell: InteractiveShell, name: str = "default") -> str:
    session = session_of(shell)
    return next(ctx.id for _, n, ctx in session.known_contexts() if n == name)


def poll(condition: Callable[[], Any], *, timeout: float = 30.0, what: str = "a condition") -> Any:
    return wait_until(condition, timeout=timeout, what=what)


def start_run_elsewhere(http: httpx.Client, sandbox_id: str, ctx_id: str, code: str) -> str:
    """Start a run with another client (plain HTTP); wait until it is running."""
    created = http.post(
        f"/v1/sandboxes/{sandbox_id}/code/runs", json={"code": code, "context_id": ctx_id}
    )
    assert created.status_code == 202, created.text
    run_id: str = created.json()["id"]
    poll(lambda: run_status(http, sandbox_id, run_id) == "running", what=f"{run_id} to start")
    return run_id


def run_status(http: httpx.Client, sandbox_id: str, run_id: str) -> str:
    answer = http.get(f"/v1/sandboxes/{sandbox_id}/code/runs/{run_id}")
    answer.raise_for_status()
    return str(answer.json()["status"])


def test_status_before_and_after_connecting_shows_url_never_key(
    shell: InteractiveShell, live_server: Any
) -> None:
    result, captured = run_cell(shell, "%sandbox status")
    text = shown(result, captured)
    assert "not connected yet" in text
    assert live_server.url in text
    run_cell(shell, "%%sandbox\n1")
    result, captured = run_cell(shell, "%sandbox status")
    text = shown(result, captured)
    assert live_server.url in text
    assert "ok" in text
    assert session_of(shell).sandbox_id in text
    assert "set (hidden)" in text
    assert live_server.token not in text


def test_contexts_lists_each_named_context(shell: InteractiveShell) -> None:
    run_cell(shell, "%%sandbox\n1")
    run_cell(shell, "%%sandbox --context second\n2")
    result, captured = run_cell(shell, "%sandbox contexts")
    text = shown(result, captured)
    assert context_id(shell, "default") in text
    assert context_id(shell, "second") in text
    assert "second" in text


def test_subcommands_needing_a_sandbox_say_run_a_cell_first(shell: InteractiveShell) -> None:
    for line in ("contexts", "restart", "interrupt"):
        result, captured = run_cell(shell, f"%sandbox {line}")
        assert "run a %%sandbox cell first" in shown(result, captured), line


def test_unknown_subcommand_lists_the_known_ones(shell: InteractiveShell) -> None:
    with pytest.raises(UsageError, match="Unknown subcommand 'frobnicate'") as info:
        shell.run_line_magic("sandbox", "frobnicate")
    assert "%sandbox attach RUN_ID" in str(info.value)


def test_restart_clears_the_context_variables(shell: InteractiveShell) -> None:
    run_cell(shell, "%%sandbox\nforgotten = 1")
    result, captured = run_cell(shell, "%sandbox restart")
    assert "Restarted context 'default'" in captured.stdout
    result, _ = run_cell(shell, "%%sandbox\n'forgotten' in globals()")
    assert pretty(result.result) == "False"


def test_restart_of_an_unknown_context_names_the_known_ones(shell: InteractiveShell) -> None:
    run_cell(shell, "%%sandbox\n1")
    result, captured = run_cell(shell, "%sandbox restart nowhere")
    text = shown(result, captured)
    assert "No context named 'nowhere'" in text
    assert "default" in text


def test_interrupt_stops_a_run_started_elsewhere_and_keeps_variables(
    shell: InteractiveShell, live_server: Any
) -> None:
    run_cell(shell, "%%sandbox\nsurvivor = 5")
    sandbox_id = session_of(shell).sandbox_id
    with live_server.client() as http:
        run_id = start_run_elsewhere(http, sandbox_id, context_id(shell), LOOP)
        _, captured = run_cell(shell, "%sandbox interrupt")
        assert "Interrupted context 'default'" in captured.stdout
        poll(
            lambda: run_status(http, sandbox_id, run_id) != "running",
            what="the interrupted run to end",
        )
        run = http.get(f"/v1/sandboxes/{sandbox_id}/code/runs/{run_id}").json()
    assert run["execution"]["error"]["name"] == "KeyboardInterrupt"
    result, _ = run_cell(shell, "%%sandbox\nsurvivor * 2")
    assert pretty(result.result) == "10"


def test_cancel_cancels_a_run_started_by_another_client(
    shell: InteractiveShell, live_server: Any
) -> None:
    run_cell(shell, "%%sandbox\n1")
    sandbox_id = session_of(shell).sandbox_id
    with live_server.client() as http:
        run_id = start_run_elsewhere(http, sandbox_id, context_id(shell), LOOP)
        _, captured = run_cell(shell, f"%sandbox cancel {run_id}")
        assert f"Cancel requested for run {run_id}" in captured.stdout
        poll(
            lambda: run_status(http, sandbox_id, run_id) == "cancelled",
            what="the run to be cancelled",
        )
    _, captured = run_cell(shell, f"%sandbox cancel {run_id}")
    assert f"Run {run_id} already ended cancelled" in captured.stdout


def test_attach_follows_a_running_run_to_its_end(shell: InteractiveShell, live_server: Any) -> None:
    run_cell(shell, "%%sandbox\n1")
    sandbox_id = session_of(shell).sandbox_id
    code = "import time\nprint('begun', flush=True)\ntime.sleep(1)\nprint('ended')\n'late value'"
    with live_server.client() as http:
        run_id = start_run_elsewhere(http, sandbox_id, context_id(shell), code)
    result, captured = run_cell(shell, f"%sandbox attach {run_id}")
    assert result.success, result.error_in_exec
    assert captured.stdout.startswith("begun\nended\n")  # then the Out[n] line
    assert pretty(result.result) == "'late value'"


def test_attach_of_an_unknown_run_is_a_clear_error(shell: InteractiveShell) -> None:
    result, captured = run_cell(shell, "%sandbox attach run_doesnotexist")
    assert "run_doesnotexist" in shown(result, captured)
    assert "Traceback" not in captured.stdout + captured.stderr


def test_runs_local_lists_journal_entries_after_a_reload(
    shell: InteractiveShell, live_server: Any
) -> None:
    run_cell(shell, "%%sandbox --out r\nprint('journalled')")
    run_id = shell.user_ns["r"].id
    journal = magics_of(shell).journal_path
    shell.run_line_magic("unload_ext", "sandbox_magic")
    shell.run_line_magic("load_ext", "sandbox_magic")
    magics = magics_of(shell)
    magics.api_url, magics.api_key = live_server.url, live_server.token
    magics.journal_path = journal
    result, captured = run_cell(shell, "%sandbox runs --local")
    text = shown(result, captured)
    assert run_id in text
    assert "print('journalled')" in text
    assert live_server.token not in text
    result, captured = run_cell(shell, f"%sandbox attach {run_id}")
    assert captured.stdout.startswith("journalled\n")


def test_stop_deletes_the_sandbox_and_the_next_cell_gets_a_new_one(
    shell: InteractiveShell, live_server: Any
) -> None:
    run_cell(shell, "%%sandbox\n1")
    first = session_of(shell).sandbox_id
    _, captured = run_cell(shell, "%sandbox stop")
    assert f"Deleted sandbox {first}" in captured.stdout
    with live_server.client() as http:
        gone = http.get(f"/v1/sandboxes/{first}")
        assert gone.status_code == 404 or gone.json()["status"] == "destroyed"
    _, captured = run_cell(shell, "%sandbox stop")
    assert "nothing to stop" in captured.stdout
    result, _ = run_cell(shell, "%%sandbox\n'fresh'")
    assert pretty(result.result) == "'fresh'"
    assert session_of(shell).sandbox_id not in (None, first)
