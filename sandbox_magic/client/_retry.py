"""Retrying transient failures: exponential backoff, full jitter, a bounded total wait.

A small loop instead of a dependency. What counts as transient is decided by the
caller (`AsyncSandboxClient` knows whether a request is safe to repeat); this module
owns the timing:

- the n-th retry waits a uniformly random time in ``[0, min(max_delay, base_delay * 2**n)]``
  ("full jitter"), or what the server asked for in ``Retry-After`` when that is longer
  (capped at ``max_retry_after``);
- at most ``max_attempts`` attempts, and no wait that would end past ``total_timeout``
  seconds after the first attempt began;
- when it gives up, the last error is raised again with a note of how many attempts were
  made over how long, so the user knows retrying already happened.

``sleep``, ``clock`` and ``random`` are injectable so tests never really wait.
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from sandbox_magic.client._errors import (
    RateLimitedError,
    SandboxAPIError,
    SandboxConnectionError,
    SandboxError,
    api_error_for_status,
)

__all__ = [
    "Clock",
    "RetryPolicy",
    "Sleep",
    "parse_retry_after",
    "retry_async",
]

_T = TypeVar("_T")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to retry a transient failure.

    ``max_attempts`` counts the first try (1 disables retrying); ``total_timeout`` bounds,
    in seconds, the time from the first attempt to the start of the last one.
    """

    max_attempts: int = 5
    total_timeout: float = 30.0
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_retry_after: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be at least 1")
        for name in ("total_timeout", "base_delay", "max_delay", "max_retry_after"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"RetryPolicy.{name} must be a finite number >= 0")

    def backoff(self, retry_number: int, rand: float) -> float:
        """The jittered wait before retry ``retry_number`` (0-based); ``rand`` in [0, 1)."""
        ceiling = min(self.max_delay, self.base_delay * (2.0 ** min(retry_number, 62)))
        return ceiling * rand


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date).

    None when absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _attempts_note(attempts: int, elapsed: float) -> str:
    plural = "attempt" if attempts == 1 else "attempts"
    return f"gave up after {attempts} {plural} over {elapsed:.1f} s"


def _gave_up(exc: SandboxError, note: str) -> SandboxError:
    """The same kind of error, its message saying why retrying stopped."""
    if isinstance(exc, SandboxConnectionError):
        return SandboxConnectionError(exc.url, f"{exc.detail} ({note})")
    if isinstance(exc, SandboxAPIError):
        return api_error_for_status(
            exc.status_code,
            f"{exc.message} ({note})",
            code=exc.code,
            request_id=exc.request_id,
            retryable=exc.retryable,
            retry_after=exc.retry_after if isinstance(exc, RateLimitedError) else None,
        )
    return exc


async def retry_async(
    attempt: Callable[[int], Awaitable[_T]],
    *,
    policy: RetryPolicy,
    should_retry: Callable[[SandboxError], bool],
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    random: Callable[[], float] = _random.random,
) -> _T:
    """Await ``attempt(n)`` (n = 1, 2, ...) until it returns or fails for good.

    Only `SandboxError`s that ``should_retry`` accepts are retried; anything else, and
    cancellation, propagates at once.
    """
    start = clock()
    number = 1
    while True:
        try:
            return await attempt(number)
        except SandboxError as exc:
            if not should_retry(exc):
                raise
            elapsed = clock() - start
            delay = policy.backoff(number - 1, random())
            if isinstance(exc, RateLimitedError) and exc.retry_after is not None:
                asked = exc.retry_after
                if asked > policy.max_retry_after:
                    # The server wants a longer pause than we are willing to block for.
                    note = f"the server asked to wait {asked:.0f} s; not retrying"
                    raise _gave_up(exc, note) from exc
                delay = max(delay, asked)
            if policy.max_attempts == 1:
                raise
            if number >= policy.max_attempts or elapsed + delay > policy.total_timeout:
                raise _gave_up(exc, _attempts_note(number, elapsed)) from exc
            await sleep(delay)
            number += 1
