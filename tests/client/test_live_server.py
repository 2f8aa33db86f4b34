"""The client and poller against the real local server (the ``live_server`` fixture)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from sandbox_magic.client import (
    AsyncSandboxClient,
    AuthenticationError,
    NotFoundError,
    OutputCursor,
    PollPolicy,
    RetryPolicy,
    Run,
    StreamChunk,
    ordered_outputs,
    poll_run,
    run_deadline,
)

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

POLICY = PollPolicy()


@pytest.fixture
def server(live_server: Any) -> Any:
    """The session's real server subprocess (tests/conftest.py)."""
    return live_server


@pytest.fixture
async def client(server: Any) -> AsyncIterator[AsyncSandboxClient]:
    async with AsyncSandboxClient(server.url, server.token) as client:
        yield client


@pytest.fixture
async def sandbox(client: AsyncSandboxClient) -> AsyncIterator[tuple[str, str]]:
    """A fresh sandbox and context, deleted afterwards."""
    box = await client.create_sandbox(metadata={"test": "client"})
    try:
        context = await client.create_context(box.id, language="python")
        yield box.id, context.id
    finally:
        await client.delete_sandbox(box.id)


async def run_to_end(
    client: AsyncSandboxClient, sandbox_id: str, context_id: str, code: str, **kwargs: Any
) -> tuple[Run, list[Run]]:
    run = await client.create_run(sandbox_id, code=code, context_id=context_id, **kwargs)
    updates: list[Run] = []
    final = await poll_run(
        client,
        sandbox_id,
        run.id,
        policy=POLICY,
        deadline=run_deadline(run, slack=60),
        on_update=updates.append,
        initial=run,
    )
    return final, updates


async def test_health_answers(client: AsyncSandboxClient) -> None:
    assert await client.health() is True


async def test_run_streams_output_and_ends_succeeded(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    sandbox_id, context_id = sandbox
    code = (
        "import sys, time\nprint('one', flush=True)\ntime.sleep(1.0)\n"
        "print('two', file=sys.stderr)\n6 * 7"
    )
    final, updates = await run_to_end(client, sandbox_id, context_id, code)
    assert final.status == "succeeded"
    assert "".join(final.execution.logs.stdout) == "one\n"
    assert "".join(final.execution.logs.stderr) == "two\n"
    main = final.execution.main_result
    assert main is not None
    assert main.text == "42"
    assert updates[-1] == final
    # Output was seen while the run was still going, and never twice.
    cursor = OutputCursor()
    seen = [o for update in updates for o in cursor.advance(update.execution)]
    assert seen == ordered_outputs(final.execution)
    assert isinstance(seen[0], StreamChunk)
    assert any("one" in "".join(u.execution.logs.stdout) for u in updates if not u.is_terminal)


async def test_context_keeps_variables_between_runs(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    sandbox_id, context_id = sandbox
    await run_to_end(client, sandbox_id, context_id, "x = 20")
    final, _ = await run_to_end(client, sandbox_id, context_id, "x + 1")
    assert final.execution.main_result is not None
    assert final.execution.main_result.text == "21"


async def test_same_idempotency_key_gives_back_the_same_run(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    sandbox_id, context_id = sandbox
    key = str(uuid.uuid4())
    first = await client.create_run(
        sandbox_id, code="1", context_id=context_id, idempotency_key=key
    )
    again = await client.create_run(
        sandbox_id, code="1", context_id=context_id, idempotency_key=key
    )
    assert again.id == first.id
    page = await client.list_runs(sandbox_id, context_id=context_id)
    assert [r.id for r in page.items].count(first.id) == 1


async def test_listing_runs_finds_a_finished_run(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    sandbox_id, context_id = sandbox
    final, _ = await run_to_end(client, sandbox_id, context_id, "print('listed')")
    page = await client.list_runs(sandbox_id, status="succeeded", limit=50)
    assert final.id in [r.id for r in page.items]
    assert all(r.status == "succeeded" for r in page.items)
    assert (await client.get_run(sandbox_id, final.id)).status == "succeeded"


async def test_cancel_stops_a_running_run_and_keeps_the_context(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    sandbox_id, context_id = sandbox
    await run_to_end(client, sandbox_id, context_id, "kept = 'yes'")
    run = await client.create_run(
        sandbox_id, code="import time\nprint('started', flush=True)\ntime.sleep(60)",
        context_id=context_id,
    )  # fmt: skip
    started = asyncio.Event()

    def on_update(update: Run) -> None:
        if update.execution.logs.stdout:
            started.set()

    waiter = asyncio.ensure_future(
        poll_run(client, sandbox_id, run.id, policy=POLICY, deadline=None, on_update=on_update)
    )
    await asyncio.wait_for(started.wait(), 30)
    await client.cancel_run(sandbox_id, run.id)
    final = await asyncio.wait_for(waiter, 30)
    assert final.status == "cancelled"
    after, _ = await run_to_end(client, sandbox_id, context_id, "kept")
    assert after.execution.main_result is not None
    assert after.execution.main_result.text == "'yes'"


async def test_unknown_run_is_not_found(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    with pytest.raises(NotFoundError):
        await client.get_run(sandbox[0], "run_does_not_exist")


async def test_wrong_key_is_refused(server: Any) -> None:
    if not server.token:
        pytest.skip("the live server runs without a token")
    wrong = AsyncSandboxClient(server.url, "not-the-token", retry=RetryPolicy(max_attempts=1))
    async with wrong:
        with pytest.raises(AuthenticationError) as info:
            await wrong.list_sandboxes()
    assert "not-the-token" not in str(info.value)
    assert server.token not in str(info.value)


async def test_trivial_run_costs_little_beyond_server_time(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    """Wall time from submit to final answer vs the server's own created->completed time."""
    sandbox_id, context_id = sandbox
    await run_to_end(client, sandbox_id, context_id, "pass")  # warm the context
    overheads = []
    for _ in range(5):
        started = time.perf_counter()
        final, _ = await run_to_end(client, sandbox_id, context_id, "1 + 1")
        wall = time.perf_counter() - started
        server_time = final.duration_seconds
        assert server_time is not None
        overheads.append(wall - server_time)
    overheads.sort()
    median = overheads[len(overheads) // 2]
    print(f"trivial run: client overhead beyond server time, median {median * 1000:.0f} ms")
    assert median < 0.15


async def test_a_held_submit_from_the_calling_thread_brings_a_short_run_back_whole(
    client: AsyncSandboxClient, sandbox: tuple[str, str]
) -> None:
    sandbox_id, context_id = sandbox
    await run_to_end(client, sandbox_id, context_id, "pass")  # the server's features known
    key = str(uuid.uuid4())
    made: list[Run] = []
    run = await asyncio.to_thread(
        lambda: client.create_run_now(
            sandbox_id,
            code="1 + 1",
            context_id=context_id,
            idempotency_key=key,
            settle=5.0,
            on_created=made.append,
        )
    )
    assert run is not None
    assert run.is_terminal
    assert run.status == "succeeded"
    assert run.execution.main_result is not None
    assert run.execution.main_result.text == "2"
    assert [m.id for m in made] == [run.id]  # told once, as soon as the run was made
    # What a caller does when the quick path gives up: the same key finds the same run.
    again = await client.create_run(
        sandbox_id, code="1 + 1", context_id=context_id, idempotency_key=key
    )
    assert again.id == run.id
