"""Faults between the magic and the server: retried, never duplicated, bounded when fatal."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from faultproxy import Exchange, FaultProxy
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output
from testkit import session_of, wait_until

from sandbox_magic.client import PollPolicy, Run, SandboxConnectionError, SandboxError, poll_run
from sandbox_magic.notebook.hints import with_hint

CELLS = 100
#: Each cell counts itself and naps past the submit's wait (on a server that can watch
#: runs, a short run is complete in the submit's answer), so that it is followed.
CELL = "%%sandbox --quiet\ncounter += 1\n__import__('time').sleep(0.4)\n(counter, {i})"
#: Faults whose request already reached the server: the client cannot know whether
#: it acted, so only the Idempotency-Key stands between a retry and a second run.
ACTED = ("drop_after", "truncate", "truncate_json", "stall_after")
NOT_ACTED = ("503", "drop", "429")
#: Slow faults (each costs a read timeout or a Retry-After) are capped.
CAPS = {"stall_after": 8, "429": 8}


class FaultSchedule:
    """Deterministic plan: every other cell's submission and every third poll is spoiled.

    Submissions get the faults where the server has already acted; polls get all of
    them in turn. Two consecutive attempts of one request are never both spoiled, so
    the client's bounded retries always have an answer to find.
    """

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        self._posts = 0
        self._gets = 0
        self._other = 0
        self._lock = threading.Lock()

    def _pick(self, kinds: tuple[str, ...], turn: int) -> str:
        for offset in range(len(kinds)):
            kind = kinds[(turn + offset) % len(kinds)]
            if self.counts[kind] < CAPS.get(kind, 10**9):
                return kind
        return "503"

    def __call__(self, exchange: Exchange) -> str | None:
        path = exchange.path.split("?")[0]
        with self._lock:
            if exchange.method == "POST" and path.endswith("/code/runs"):
                self._posts += 1
                if self._posts % 3 == 1:  # the retry and the next cell's pass
                    return self._note("submit", self._pick(ACTED, self._posts // 2))
                return None
            if exchange.method == "GET" and "/code/runs/" in path:
                self._gets += 1
                if self._gets % 3 == 0:
                    return self._note("poll", self._pick(ACTED + NOT_ACTED, self._gets // 3))
                return None
            self._other += 1
            if self._other % 2:
                return self._note("setup", self._pick(("drop_after", "503"), self._other))
            return None

    def _note(self, route: str, kind: str) -> str:
        self.counts[kind] += 1
        self.by_route[f"{route}:{kind}"] += 1
        return kind


def run_cell(ip: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


def all_runs(server: Any, sandbox_id: str) -> list[dict[str, Any]]:
    """Every run of a sandbox, asked of the server directly (no proxy)."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    with server.client() as api:
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"/v1/sandboxes/{sandbox_id}/code/runs", params=params).json()
            items.extend(page["items"])
            cursor = page["next_cursor"]
            if not cursor:
                return items


@pytest.mark.slow
def test_hundred_cells_survive_injected_faults_and_each_runs_exactly_once(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    live_server: Any,
    record_figures: Callable[[str, dict[str, Any]], None],
) -> None:
    schedule = FaultSchedule()
    started = time.monotonic()
    with FaultProxy(live_server.url, plan=schedule, stall_seconds=1.5) as proxy:
        point_shell(proxy.url, live_server.token, request_timeout=1.0)
        result, captured = run_cell(ip, "%%sandbox\ncounter = 0")
        assert result.success, (result.error_in_exec, captured.stdout, captured.stderr)
        failures = []
        for i in range(CELLS):
            result, captured = run_cell(ip, CELL.format(i=i))
            if not result.success:
                failures.append((i, repr(result.error_in_exec)))
            elif pretty(result.result) != f"({i + 1}, {i})":
                failures.append((i, pretty(result.result)))
        sandbox_id = session_of(ip).sandbox_id
        requests = proxy.requests
        injected = dict(proxy.injected)
    elapsed = time.monotonic() - started

    assert not failures, failures
    runs = all_runs(live_server, sandbox_id)
    assert len(runs) == CELLS + 1, "a retried submission created a second run"
    assert Counter(r["status"] for r in runs) == {"succeeded": CELLS + 1}
    assert set(injected) == set(ACTED + NOT_ACTED), (schedule.by_route, requests)
    assert sum(schedule.by_route[f"submit:{k}"] for k in ACTED) >= CELLS // 3
    record_figures(
        "faults",
        {
            "cells": CELLS,
            "cells_succeeded": CELLS - len(failures),
            "requests_through_proxy": requests,
            "faults_injected": sum(injected.values()),
            "faults_survived": sum(injected.values()) if not failures else None,
            "faults_by_kind": injected,
            "faults_by_route": dict(schedule.by_route),
            "runs_on_server": len(runs),
            "duplicate_runs": len(runs) - (CELLS + 1),
            "seconds": round(elapsed, 1),
        },
    )


def test_cell_fails_within_seconds_naming_the_url_when_the_server_is_gone(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    server_factory: Callable[..., Any],
    record_figures: Callable[[str, dict[str, Any]], None],
) -> None:
    server = server_factory()
    point_shell(server.url, server.token)
    result, _ = run_cell(ip, "%%sandbox\n'up'")
    assert result.success, result.error_in_exec
    server.stop()

    started = time.monotonic()
    result, captured = run_cell(ip, "%%sandbox\n'down'")
    elapsed = time.monotonic() - started

    error = result.error_in_exec
    assert isinstance(error, SandboxConnectionError), repr(error)
    message = str(error)
    assert f"Cannot reach the sandbox server at {server.url}" in message
    assert "connection refused" in message
    assert "Check that it is running" in message
    assert "`%sandbox status`" in message  # the notebook's hint, added at the magic
    assert "Traceback (most recent call last)" not in captured.stdout + captured.stderr
    assert elapsed < 30
    record_figures("server_gone_before_cell", {"seconds_to_fail": round(elapsed, 2)})


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    return wait_until(check, timeout=timeout, interval=0.02, what=what)


@pytest.mark.slow
def test_server_killed_mid_cell_fails_it_in_bounded_time_and_the_run_reads_failed_after_restart(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    server_factory: Callable[..., Any],
    tmp_path: Any,
    record_figures: Callable[[str, dict[str, Any]], None],
) -> None:
    state = tmp_path / "state"
    server = server_factory(state)
    magics = point_shell(server.url, server.token, poll_max_outage=10.0)
    result, _ = run_cell(ip, "%%sandbox --out r\n'first'")
    assert result.success, result.error_in_exec
    finished_id = ip.user_ns["r"].id
    sandbox_id = session_of(ip).sandbox_id
    killed: dict[str, Any] = {}

    def kill_once_running() -> None:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=5) as api:

            def running() -> Any:
                page = api.get(
                    f"/v1/sandboxes/{sandbox_id}/code/runs", params={"status": "running"}
                )
                items = page.json()["items"]
                return [r for r in items if r["execution"]["logs"]["stdout"]]

            [run] = _wait_for(running, 60, "the run to start")
        killed.update(at=time.monotonic(), run_id=run["id"])
        server.process.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_once_running, daemon=True)
    killer.start()
    result, captured = run_cell(
        ip, "%%sandbox --timeout 600\nimport time\nprint('started', flush=True)\ntime.sleep(300)"
    )
    failed_after = time.monotonic() - killed["at"]
    killer.join(5)
    in_flight = str(killed["run_id"])

    error = result.error_in_exec
    assert isinstance(error, SandboxError), repr(error)
    assert server.url in str(error)
    assert in_flight in str(error)  # names the run, so the user can re-attach
    assert "Traceback (most recent call last)" not in captured.stdout + captured.stderr
    assert failed_after < 30  # the outage limit (10 s) plus the last poll's retries
    server.process.wait(10)

    restarted = server_factory(state, server.token)
    magics.api_url = restarted.url
    result, captured = run_cell(ip, f"%sandbox attach {finished_id}")
    assert result.success, result.error_in_exec
    assert pretty(result.result) == "'first'"
    result, captured = run_cell(ip, f"%sandbox attach {in_flight}")
    assert result.success, result.error_in_exec  # attach shows a failure, never raises
    shown = "\n".join(o.data["text/plain"] for o in captured.outputs)
    assert f"Remote run {in_flight} ended failed: the server stopped before" in shown
    record_figures("server_killed_mid_cell", {"seconds_to_fail": round(failed_after, 2)})


class _GoneServer:
    """A run source whose server is unreachable for good, on a virtual clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.polls = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def get_run(self, sandbox_id: str, run_id: str) -> Any:
        self.polls += 1
        self.now += 3.0  # each poll spends its own retries
        raise SandboxConnectionError("http://sandbox.test", "connection refused")


@pytest.mark.anyio
async def test_polls_failing_for_the_outage_limit_end_the_wait_naming_the_run() -> None:
    gone = _GoneServer()
    with pytest.raises(SandboxConnectionError) as info:
        await poll_run(
            gone,
            "sb_1",
            "run_1",
            policy=PollPolicy(max_outage=20.0),
            deadline=gone.now + 3600,  # the run's own deadline is an hour away
            initial=Run(id="run_1", status="running"),
            sleep=gone.sleep,
            clock=gone.clock,
        )
    assert 20.0 <= gone.now < 30.0
    message = str(info.value)
    assert "Cannot reach the sandbox server at http://sandbox.test" in message
    assert "%sandbox" not in message  # the client words it for any caller
    assert info.value.run_id == "run_1"
    assert "%sandbox attach run_1" in str(with_hint(info.value))  # the notebook's hint
