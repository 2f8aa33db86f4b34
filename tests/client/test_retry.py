"""The retry loop on its own: timing, bounds and which errors it repeats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from sandbox_magic.client import (
    NotFoundError,
    RateLimitedError,
    RetryPolicy,
    SandboxConnectionError,
    SandboxError,
    ServerError,
    parse_retry_after,
    retry_async,
)

pytestmark = pytest.mark.anyio


def always(exc: SandboxError) -> bool:
    return True


def unavailable() -> ServerError:
    return ServerError("unavailable", status_code=503)


async def test_returns_first_success_without_sleeping(fake_time: Any) -> None:
    async def attempt(n: int) -> str:
        return f"ok {n}"

    result = await retry_async(
        attempt, policy=RetryPolicy(), should_retry=always, sleep=fake_time.sleep
    )
    assert result == "ok 1"
    assert fake_time.sleeps == []


async def test_backoff_grows_exponentially_with_full_jitter(fake_time: Any) -> None:
    async def attempt(n: int) -> str:
        if n < 5:
            raise unavailable()
        return "done"

    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=100.0, total_timeout=100.0)
    await retry_async(
        attempt,
        policy=policy,
        should_retry=always,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        random=lambda: 0.999,
    )
    assert fake_time.sleeps == pytest.approx([0.999, 1.998, 3.996, 7.992])


def test_backoff_is_capped_by_max_delay() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
    assert policy.backoff(10, 1.0) == 3.0
    assert policy.backoff(10_000, 0.5) == 1.5
    assert policy.backoff(0, 0.0) == 0.0


async def test_gives_up_at_max_attempts_with_a_note(fake_time: Any) -> None:
    calls: list[int] = []

    async def attempt(n: int) -> None:
        calls.append(n)
        raise SandboxConnectionError("http://x.test", "connection refused")

    with pytest.raises(SandboxConnectionError) as info:
        await retry_async(
            attempt,
            policy=RetryPolicy(max_attempts=3),
            should_retry=always,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
    assert calls == [1, 2, 3]
    assert "connection refused (gave up after 3 attempts over" in str(info.value)
    assert info.value.url == "http://x.test"


async def test_total_timeout_bounds_the_whole_wait(fake_time: Any) -> None:
    async def attempt(n: int) -> None:
        fake_time.now += 0.5  # each attempt itself takes time too
        raise unavailable()

    start = fake_time.now
    with pytest.raises(ServerError, match="gave up after"):
        await retry_async(
            attempt,
            policy=RetryPolicy(max_attempts=10_000, total_timeout=10.0, base_delay=2.0),
            should_retry=always,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
    # The last attempt starts before the bound; only its own duration can pass it.
    assert fake_time.now - start <= 10.0 + 0.5


async def test_retry_after_wins_over_shorter_backoff(fake_time: Any) -> None:
    async def attempt(n: int) -> str:
        if n == 1:
            raise RateLimitedError("slow down", status_code=429, retry_after=7.0)
        return "ok"

    await retry_async(
        attempt, policy=RetryPolicy(), should_retry=always, sleep=fake_time.sleep, random=lambda: 0
    )
    assert fake_time.sleeps == [7.0]


async def test_retry_after_that_overruns_the_budget_gives_up(fake_time: Any) -> None:
    async def attempt(n: int) -> None:
        raise RateLimitedError("slow down", status_code=429, retry_after=20.0)

    with pytest.raises(RateLimitedError, match="gave up after 1 attempt over"):
        await retry_async(
            attempt,
            policy=RetryPolicy(total_timeout=10.0),
            should_retry=always,
            sleep=fake_time.sleep,
            clock=fake_time.clock,
        )
    assert fake_time.sleeps == []


async def test_unaccepted_error_propagates_unchanged(fake_time: Any) -> None:
    error = NotFoundError("gone", status_code=404)

    async def attempt(n: int) -> None:
        raise error

    with pytest.raises(NotFoundError) as info:
        await retry_async(
            attempt,
            policy=RetryPolicy(),
            should_retry=lambda e: not isinstance(e, NotFoundError),
            sleep=fake_time.sleep,
        )
    assert info.value is error


async def test_single_attempt_policy_raises_original(fake_time: Any) -> None:
    error = unavailable()

    async def attempt(n: int) -> None:
        raise error

    with pytest.raises(ServerError) as info:
        await retry_async(attempt, policy=RetryPolicy(max_attempts=1), should_retry=always)
    assert info.value is error


async def test_cancellation_during_backoff_propagates() -> None:
    started = asyncio.Event()

    async def attempt(n: int) -> None:
        raise unavailable()

    async def parked_sleep(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.ensure_future(
        retry_async(attempt, policy=RetryPolicy(), should_retry=always, sleep=parked_sleep)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), (" 10 ", 10.0), ("-4", 0.0), ("", None), (None, None),
     ("soon", None), ("nan", None), ("inf", None)],
)  # fmt: skip
def test_parse_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(header, now=now) == 90.0
    past = format_datetime(now - timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(past, now=now) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [{"max_attempts": 0}, {"total_timeout": -1}, {"base_delay": float("nan")}],
)
def test_policy_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**kwargs)
