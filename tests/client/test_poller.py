"""poll_run against a scripted server (MockTransport), on a virtual clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox_magic.client import (
    AsyncSandboxClient,
    NotFoundError,
    PollPolicy,
    RetryPolicy,
    Run,
    SandboxTimeoutError,
    poll_run,
    progress_key,
    run_deadline,
)

pytestmark = pytest.mark.anyio

RUN_PATH = "/v1/sandboxes/sb_1/code/runs/run_1"
POLICY = PollPolicy(min_interval=0.02, max_interval=1.0, growth=1.5)


class ScriptedServer:
    """Answers GETs of run_1 with the next scripted snapshot (the last one repeats)."""

    def __init__(self, fake_time: Any, *script: dict[str, Any] | httpx.Response | Exception):
        self.script = list(script)
        self.fake_time = fake_time
        self.polled_at: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET"
        assert request.url.path == RUN_PATH
        self.polled_at.append(self.fake_time.now)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, httpx.TransportError):
            raise type(step)(str(step), request=request)
        if isinstance(step, httpx.Response):
            return httpx.Response(step.status_code, headers=step.headers, content=step.content)
        return httpx.Response(200, json=step)


@pytest.fixture
def scripted(
    make_client: Callable[..., AsyncSandboxClient], fake_time: Any
) -> Callable[..., tuple[ScriptedServer, AsyncSandboxClient]]:
    def build(*script: Any) -> tuple[ScriptedServer, AsyncSandboxClient]:
        server = ScriptedServer(fake_time, *script)
        # No client-side retries: every fault reaches the poller.
        return server, make_client(server, retry=RetryPolicy(max_attempts=1))

    return build


async def poll(client: AsyncSandboxClient, fake_time: Any, **kwargs: Any) -> Run:
    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("deadline", None)
    return await poll_run(
        client, "sb_1", "run_1", sleep=fake_time.sleep, clock=fake_time.clock, **kwargs
    )


def expected_intervals(changes: list[bool], policy: PollPolicy = POLICY) -> list[float]:
    """The sleeps before each poll, given whether each poll saw a change."""
    interval, sleeps = policy.min_interval, []
    for changed in changes:
        sleeps.append(interval)
        interval = policy.min_interval if changed else policy.next_interval(interval)
    return sleeps


async def test_updates_report_each_change_once_in_order(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = scripted(
        run_json(status="queued"),
        run_json(status="running"),
        run_json(status="running", stdout=["a"]),
        run_json(status="running", stdout=["a"]),
        run_json(status="running", stdout=["a", "b"]),
        run_json(status="running", stdout=["a", "b"]),
        run_json(status="succeeded", stdout=["a", "b"], results=[{"text": "3"}]),
    )
    seen: list[tuple[str, int]] = []
    initial = Run.from_json(run_json(status="queued"))
    async with client:
        final = await poll(
            client,
            fake_time,
            initial=initial,
            on_update=lambda r: seen.append((r.status, len(r.execution.logs.stdout))),
        )
    assert seen == [("running", 0), ("running", 1), ("running", 2), ("succeeded", 2)]
    assert final.status == "succeeded"
    assert final.execution.results[0].text == "3"
    assert len(server.polled_at) == 7


async def test_interval_grows_while_quiet_and_resets_on_change(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    quiet = run_json(status="running")
    script = [quiet] * 6 + [run_json(status="running", stdout=["x"])]
    script += [run_json(status="running", stdout=["x"])] * 3
    script += [run_json(status="succeeded", stdout=["x"])]
    _, client = scripted(*script)
    async with client:
        await poll(client, fake_time, initial=Run.from_json(quiet))
    changes = [False] * 6 + [True] + [False] * 3 + [True]
    assert fake_time.sleeps == pytest.approx(expected_intervals(changes))
    assert fake_time.sleeps[6] > fake_time.sleeps[0] * 10  # grown ...
    assert fake_time.sleeps[7] == POLICY.min_interval  # ... and reset by new output


async def test_interval_is_capped_at_max(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    quiet = run_json(status="running")
    _, client = scripted(*([quiet] * 40), run_json(status="succeeded"))
    policy = PollPolicy(min_interval=0.05, max_interval=0.4, growth=2.0)
    async with client:
        await poll(client, fake_time, policy=policy, initial=Run.from_json(quiet))
    assert max(fake_time.sleeps) == 0.4
    assert fake_time.sleeps[-5:] == [0.4] * 5


async def test_first_poll_is_immediate_without_initial(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = scripted(run_json(status="succeeded"))
    start = fake_time.now
    updates: list[Run] = []
    async with client:
        final = await poll(client, fake_time, on_update=updates.append)
    assert server.polled_at == [start]
    assert fake_time.sleeps == []
    assert updates == [final]


async def test_first_poll_follows_min_interval_after_submit(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = scripted(run_json(status="succeeded"))
    start = fake_time.now
    async with client:
        await poll(client, fake_time, initial=Run.from_json(run_json(status="queued")))
    assert server.polled_at == [pytest.approx(start + POLICY.min_interval)]


async def test_terminal_initial_returns_without_polling(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = scripted(run_json(status="running"))
    done = Run.from_json(run_json(status="failed", failure_reason="timed out after 5 s"))
    updates: list[Run] = []
    async with client:
        assert await poll(client, fake_time, initial=done, on_update=updates.append) is done
    assert server.polled_at == []
    assert updates == []


async def test_volatile_fields_do_not_count_as_changes(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    ticking = [run_json(status="running", expires_at=f"2030-01-01T00:00:0{i}Z") for i in range(5)]
    _, client = scripted(*ticking, run_json(status="succeeded"))
    updates: list[str] = []
    async with client:
        await poll(
            client,
            fake_time,
            initial=Run.from_json(ticking[0]),
            on_update=lambda r: updates.append(r.status),
        )
    assert updates == ["succeeded"]
    assert fake_time.sleeps == pytest.approx(expected_intervals([False] * 5 + [True]))


async def test_deadline_raises_timeout_naming_the_run(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = scripted(run_json(status="running"))
    deadline = fake_time.now + 5.0
    async with client:
        with pytest.raises(SandboxTimeoutError) as info:
            await poll(
                client,
                fake_time,
                deadline=deadline,
                initial=Run.from_json(run_json(status="queued")),
            )
    message = str(info.value)
    assert "run_1" in message
    assert "still running" in message
    assert fake_time.now <= deadline + 1e-9
    assert server.polled_at[-1] == pytest.approx(deadline)  # one last look at the deadline
    assert len(server.polled_at) < 30


async def test_transient_errors_are_tolerated(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    _, client = scripted(
        run_json(status="running"),
        httpx.Response(503),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.Response(429, headers={"Retry-After": "1"}),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.ReadTimeout("slow"),
        run_json(status="succeeded", stdout=["done"]),
    )
    updates: list[str] = []
    async with client:
        final = await poll(client, fake_time, on_update=lambda r: updates.append(r.status))
    assert final.status == "succeeded"
    assert updates == ["running", "succeeded"]


async def test_rate_limited_poll_waits_as_asked(
    scripted: Any, fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    _, client = scripted(
        httpx.Response(429, headers={"Retry-After": "3"}), run_json(status="succeeded")
    )
    async with client:
        await poll(client, fake_time)
    assert fake_time.sleeps == [3.0]


async def test_persistent_outage_ends_at_deadline_with_last_error(
    scripted: Any, fake_time: Any
) -> None:
    _, client = scripted(httpx.ConnectError("[Errno 111] Connection refused"))
    async with client:
        with pytest.raises(SandboxTimeoutError, match="connection refused") as info:
            await poll(client, fake_time, deadline=fake_time.now + 3.0)
    assert "its status unknown" in str(info.value)


async def test_not_found_ends_polling_at_once(scripted: Any, fake_time: Any) -> None:
    server, client = scripted(httpx.Response(404, json={"error": "no run", "code": "not_found"}))
    async with client:
        with pytest.raises(NotFoundError, match="no run"):
            await poll(client, fake_time, deadline=fake_time.now + 60)
    assert len(server.polled_at) == 1


class HangingSource:
    """A client whose get_run never answers."""

    def __init__(self) -> None:
        self.called = asyncio.Event()

    async def get_run(self, sandbox_id: str, run_id: str) -> Run:
        self.called.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_cancelling_the_waiter_propagates() -> None:
    source = HangingSource()
    task = asyncio.ensure_future(poll_run(source, "sb_1", "run_1", policy=POLICY, deadline=None))
    await source.called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_deadline_cuts_a_poll_that_hangs() -> None:
    source = HangingSource()
    started = time.monotonic()
    with pytest.raises(SandboxTimeoutError, match="run_1"):
        await poll_run(source, "sb_1", "run_1", policy=POLICY, deadline=started + 0.05)
    assert time.monotonic() - started < 1.0


async def test_trivial_run_costs_only_tens_of_ms(
    run_json: Callable[..., dict[str, Any]],
) -> None:
    """Real time, no fakes: a run done by the second look is seen within ~2 intervals."""
    answers = [run_json(status="running"), run_json(status="succeeded")]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=answers.pop(0) if len(answers) > 1 else answers[0])

    client = AsyncSandboxClient(
        "http://sandbox.test", transport=httpx.MockTransport(handler), api_generation="0"
    )
    async with client:
        started = time.perf_counter()
        final = await poll_run(
            client,
            "sb_1",
            "run_1",
            policy=POLICY,
            deadline=None,
            initial=Run.from_json(run_json(status="queued")),
        )
        elapsed = time.perf_counter() - started
    assert final.status == "succeeded"
    assert elapsed < 0.2


def test_run_deadline_adds_slack_to_the_run_timeout(
    run_json: Callable[..., dict[str, Any]],
) -> None:
    run = Run.from_json(run_json())  # timeout_secs 60
    assert run_deadline(run, slack=5, clock=lambda: 100.0) == 165.0
    untimed = Run.from_json({"id": "r", "status": "queued"})
    assert run_deadline(untimed, clock=lambda: 100.0) is None
    assert run_deadline(untimed, slack=1, default_timeout=9, clock=lambda: 100.0) == 110.0


def test_progress_key_sees_output_and_status_changes(
    run_json: Callable[..., dict[str, Any]],
) -> None:
    base = Run.from_json(run_json(status="running", stdout=["a"]))
    assert progress_key(base) == progress_key(
        Run.from_json(run_json(status="running", stdout=["a"]))
    )
    for changed in (
        run_json(status="succeeded", stdout=["a"]),
        run_json(status="running", stdout=["a", "b"]),
        run_json(status="running", stdout=["ab"]),
        run_json(status="running", stdout=["a"], stderr=["w"]),
        run_json(status="running", stdout=["a"], results=[{"text": "1"}]),
    ):
        assert progress_key(Run.from_json(changed)) != progress_key(base)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_interval": -1},
        {"max_interval": 0.001},
        {"growth": 0.5},
        {"min_interval": float("inf")},
    ],
)
def test_poll_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="PollPolicy"):
        PollPolicy(**kwargs)
