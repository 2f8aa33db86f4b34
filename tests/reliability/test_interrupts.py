"""Interrupts and cancels: the remote run ends cancelled, the context keeps its state."""

from __future__ import annotations

import _thread
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output
from testkit import session_of, wait_until

from sandbox_magic.client import RunCancelledError

ROUNDS = 20
LONG_CELL = "%%sandbox\nimport time\nprint(kept, flush=True)\ntime.sleep(30)\nprint('not reached')"


def _keep_a_variable(ip: InteractiveShell) -> str:
    """Set ``kept`` in the remote context (a cancel must not lose it); the sandbox id."""
    result, _ = _run_cell(ip, "%%sandbox\nkept = 'still here'")
    assert result.success, result.error_in_exec
    sandbox_id = session_of(ip).sandbox_id
    assert sandbox_id is not None
    return sandbox_id


def _running_run_with_output(server: Any, sandbox_id: str, timeout: float = 60.0) -> dict:
    """Wait (polling the server directly) for a run of the sandbox that has printed."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=10) as api:

        def printing() -> dict | None:
            page = api.get(f"/v1/sandboxes/{sandbox_id}/code/runs", params={"status": "running"})
            found = [run for run in page.json()["items"] if run["execution"]["logs"]["stdout"]]
            return dict(found[0]) if found else None

        result: dict = wait_until(printing, timeout=timeout, interval=0.01, what="a printing run")
        return result


def _when_running(server: Any, sandbox_id: str, action: Callable[[dict], None]) -> dict:
    """Start a thread that runs ``action(run)`` once a run prints; returns what it saw."""
    seen: dict[str, Any] = {}

    def watch() -> None:
        try:
            run = _running_run_with_output(server, sandbox_id)
        except AssertionError as error:
            seen["error"] = error
            return
        seen["run"] = run
        seen["at"] = time.monotonic()
        action(run)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    seen["thread"] = thread
    return seen


def _run_cell(ip: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


@pytest.mark.slow
def test_repeated_interrupts_cancel_each_remote_run_and_keep_the_context(
    ip: InteractiveShell,
    shell: InteractiveShell,
    live_server: Any,
    record_figures: Callable[[str, dict[str, Any]], None],
) -> None:
    sandbox_id = _keep_a_variable(ip)
    to_cell_end: list[float] = []
    with live_server.client() as api:
        for _ in range(ROUNDS):
            seen = _when_running(live_server, sandbox_id, lambda run: _thread.interrupt_main())
            result, captured = _run_cell(ip, LONG_CELL)
            ended = time.monotonic()
            seen["thread"].join(5)
            assert "error" not in seen, seen.get("error")
            to_cell_end.append(ended - seen["at"])

            error = result.error_in_exec
            assert isinstance(error, RunCancelledError), repr(error)
            run_id = seen["run"]["id"]
            assert run_id in str(error)
            assert "still here" in captured.stdout  # the variable survived the last cancel
            assert "not reached" not in captured.stdout
            remote = api.get(f"/v1/sandboxes/{sandbox_id}/code/runs/{run_id}").json()
            assert remote["status"] == "cancelled"
            assert remote["cancel_requested_at"] is not None

    result, _ = _run_cell(ip, "%%sandbox\nkept")
    assert pretty(result.result) == "'still here'"
    assert max(to_cell_end) < 15
    record_figures(
        "interrupts",
        {
            "rounds": ROUNDS,
            "cancelled_on_server": ROUNDS,
            "seconds_interrupt_to_cell_end_median": round(statistics.median(to_cell_end), 3),
            "seconds_interrupt_to_cell_end_max": round(max(to_cell_end), 3),
        },
    )


#: Stop delays from the start of the cell: across the submit, the held answer (0.25 s)
#: and the start of following the run.
STOP_DELAYS = [round(0.01 + 0.03 * step, 2) for step in range(16)]


@pytest.mark.slow
def test_a_stop_at_any_moment_of_the_cell_leaves_no_remote_run_going(
    ip: InteractiveShell, shell: InteractiveShell, live_server: Any
) -> None:
    sandbox_id = _keep_a_variable(ip)
    outcomes: list[str] = []

    def start_timer(delay: float) -> Callable[..., None]:
        def arm(*_info: object) -> None:
            threading.Timer(delay, _thread.interrupt_main).start()

        return arm

    with live_server.client() as api:

        def active_runs() -> list[str]:
            page = api.get(f"/v1/sandboxes/{sandbox_id}/code/runs").json()
            return [run["id"] for run in page["items"] if run["status"] in ("queued", "running")]

        for delay in STOP_DELAYS:
            arm = start_timer(delay)
            ip.events.register("pre_run_cell", arm)
            try:
                result, _ = _run_cell(ip, LONG_CELL)
                error = result.error_in_exec
            except KeyboardInterrupt as stop:  # landed in IPython before the cell ran
                error = stop
            finally:
                ip.events.unregister("pre_run_cell", arm)
            # A cancelled run, or (stopped before any run was made) a plain stop.
            assert isinstance(error, RunCancelledError | KeyboardInterrupt), (delay, error)
            outcomes.append(type(error).__name__)
            wait_until(lambda: not active_runs(), timeout=10, what="no run left going")

    print("stop outcomes", outcomes)
    assert "RunCancelledError" in outcomes  # the delays do reach the remote run
    after, _ = _run_cell(ip, "%%sandbox\nkept")
    assert pretty(after.result) == "'still here'"


def test_run_cancelled_by_another_client_is_reported_as_cancelled(
    ip: InteractiveShell, shell: InteractiveShell, live_server: Any
) -> None:
    sandbox_id = _keep_a_variable(ip)

    def cancel_elsewhere(run: dict) -> None:
        with live_server.client() as api:
            api.post(f"/v1/sandboxes/{sandbox_id}/code/runs/{run['id']}/cancel")

    seen = _when_running(live_server, sandbox_id, cancel_elsewhere)
    result, captured = _run_cell(ip, LONG_CELL)
    seen["thread"].join(5)

    error = result.error_in_exec
    assert isinstance(error, RunCancelledError), repr(error)
    assert str(error) == f"Remote run {seen['run']['id']} ended cancelled: cancelled by request"
    assert "Traceback (most recent call last)" not in captured.stdout + captured.stderr
    after, _ = _run_cell(ip, "%%sandbox\nkept")
    assert pretty(after.result) == "'still here'"
