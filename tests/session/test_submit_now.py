"""`SandboxSession.submit_now`: a cell's submit from its own thread, against the real server.

It is taken only once everything it needs is known, gives back a short run whole, and
leaves whatever it cannot do (here a context the server lost) to `submit`, which
recovers as always.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_magic.client import Run
from sandbox_magic.session.journal import Journal
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import ConnectionSettings, RunRequest, SandboxSession

pytestmark = pytest.mark.slow


@pytest.fixture
def io() -> Iterator[IOLoopThread]:
    loop = IOLoopThread()
    yield loop
    loop.stop()


@pytest.fixture
def session(live_server: Any, io: IOLoopThread, tmp_path: Path) -> Iterator[SandboxSession]:
    settings = ConnectionSettings(api_url=live_server.url, api_key=live_server.token)
    made = SandboxSession(settings, journal=Journal(tmp_path / "runs.jsonl"))
    yield made
    io.run(made.delete_sandbox())
    io.run(made.close())


def test_a_known_context_gets_its_short_run_back_whole_and_journalled_once(
    session: SandboxSession, io: IOLoopThread
) -> None:
    assert session.submit_now(RunRequest("1 + 1")) is None  # nothing known yet
    io.run(session.submit(RunRequest("x = 41")))
    made: list[Run] = []
    run = session.submit_now(RunRequest("x + 1"), on_created=made.append)
    assert run is not None
    assert run.is_terminal
    assert run.execution.main_result is not None
    assert run.execution.main_result.text == "42"
    assert [m.id for m in made] == [run.id]
    assert session.journal is not None
    assert [e.run_id for e in session.journal.entries()].count(run.id) == 1
    # Another context name is not made yet: that is the loop's work.
    assert session.submit_now(RunRequest("1", context="other")) is None


def test_a_context_the_server_lost_is_left_to_submit_which_recovers(
    session: SandboxSession, io: IOLoopThread, live_server: Any
) -> None:
    first = io.run(session.submit(RunRequest("x = 1")))
    with live_server.client() as api:
        api.delete(f"/v1/sandboxes/{first.sandbox_id}/code/contexts/{first.context_id}")
    request = RunRequest("1 + 1")
    assert session.submit_now(request) is None
    run = io.run(session.submit(request))
    assert run.context_id != first.context_id
    assert any("no longer existed" in notice for notice in session.take_notices())
