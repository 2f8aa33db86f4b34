"""Wait for a run to end by polling it, reporting every change on the way.

The interval adapts: it starts at ``PollPolicy.min_interval`` (tens of milliseconds, so
a trivial run costs little more than its server time), grows geometrically to
``max_interval`` while nothing changes, and drops back to the minimum whenever the run
changes (new output or a new status), so streamed output stays snappy.

The default growth (1.7) is set by the poll load it causes: a silent 20 s run costs
about 26 reads against the 21 of a fixed 1 s poll (about 29 with growth 1.5, because
the ramp to ``max_interval`` makes more reads than the time it covers). See
BENCHMARKS.md.

Transient failures of one poll (unreachable server, 5xx, 429) are tolerated until the
deadline, or until polls have failed without a break for ``PollPolicy.max_outage``
seconds (a server that is gone ends the wait in bounded time, naming the run to
re-attach); other errors (not found, bad key, malformed reply) end the wait at once.
Cancelling the awaiting task simply propagates: sending ``cancel`` to the server is the
caller's decision.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from sandbox_magic.client._errors import (
    RateLimitedError,
    SandboxConnectionError,
    SandboxError,
    SandboxTimeoutError,
    ServerError,
)
from sandbox_magic.client._models import Result, Run

__all__ = [
    "DEFAULT_DEADLINE_SLACK",
    "PollPolicy",
    "RunSource",
    "poll_run",
    "progress_key",
    "run_deadline",
]

#: Seconds added to a run's own timeout before the local deadline gives up on it: the
#: server enforces the timeout itself, the local deadline only guards against silence.
DEFAULT_DEADLINE_SLACK = 30.0

#: Seconds allowed for the poll made right at the deadline.
_LAST_LOOK = 2.0

#: Longest pause taken when a poll is rate limited (the server's Retry-After, capped).
_MAX_RATE_LIMIT_PAUSE = 30.0

_TRANSIENT = (SandboxConnectionError, ServerError, RateLimitedError)


class RunSource(Protocol):
    """What the poller needs from a client (`AsyncSandboxClient` is one)."""

    async def get_run(self, sandbox_id: str, run_id: str) -> Run: ...


@dataclass(frozen=True, slots=True)
class PollPolicy:
    """Polling intervals, in seconds.

    ``max_outage`` bounds how long polls may keep failing in a row (server unreachable
    or answering 5xx) before the wait ends, even when the run's deadline is far off.
    """

    min_interval: float = 0.02
    max_interval: float = 1.0
    growth: float = 1.7
    max_outage: float = 60.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_outage) and self.max_outage > 0):
            raise ValueError("PollPolicy.max_outage must be a finite number > 0")
        if not (math.isfinite(self.min_interval) and self.min_interval >= 0):
            raise ValueError("PollPolicy.min_interval must be a finite number >= 0")
        if not (math.isfinite(self.max_interval) and self.max_interval >= self.min_interval):
            raise ValueError("PollPolicy.max_interval must be finite and >= min_interval")
        if not (math.isfinite(self.growth) and self.growth >= 1):
            raise ValueError("PollPolicy.growth must be a finite number >= 1")

    def next_interval(self, current: float) -> float:
        """The interval after an unchanged poll."""
        return min(self.max_interval, max(current, 0.001) * self.growth)


def progress_key(run: Run) -> tuple[object, ...]:
    """What makes two snapshots of a run differ for a watcher: status and output sizes.

    Fields that may tick on every read (expiry times, unknown extras) are left out, so
    they neither trigger updates nor reset the polling interval.
    """
    execution = run.execution
    logs = execution.logs
    return (
        run.status,
        run.started_at,
        run.completed_at,
        run.cancel_requested_at,
        run.failure_reason,
        len(logs.stdout),
        sum(len(chunk) for chunk in logs.stdout),
        len(logs.stderr),
        sum(len(chunk) for chunk in logs.stderr),
        len(execution.results),
        len(execution.artifacts),
        len(execution.output_order or ()),
        execution.error is not None,
        execution.execution_count,
        _displays_key(execution.results),
    )


def _displays_key(results: tuple[Result, ...]) -> int:
    """A hash of the results that carry a display id: they change in place when the
    code updates its display (``handle.update``), without any list growing."""
    parts: list[object] = []
    for index, result in enumerate(results):
        if not isinstance(result.extra, dict) or "display_id" not in result.extra:
            continue
        data = result.data if isinstance(result.data, dict) else {}
        parts.append(index)
        for mime in sorted(data):
            value = data[mime]
            parts.append((mime, value if isinstance(value, str) else _json_text(value)))
        parts.append(result.text)
    return hash(tuple(parts))


def _json_text(value: object) -> str:
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return repr(value)


def run_deadline(
    run: Run,
    *,
    slack: float = DEFAULT_DEADLINE_SLACK,
    default_timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> float | None:
    """A monotonic deadline for waiting on ``run``: its ``timeout_secs`` plus ``slack``.

    Uses ``default_timeout`` when the server did not say; None (wait forever) when
    neither is known. Queueing behind another run counts against it, hence the slack.
    """
    timeout = run.timeout_secs if run.timeout_secs is not None else default_timeout
    if timeout is None:
        return None
    return clock() + max(0.0, float(timeout)) + max(0.0, slack)


async def poll_run(
    client: RunSource,
    sandbox_id: str,
    run_id: str,
    *,
    policy: PollPolicy,
    deadline: float | None,
    on_update: Callable[[Run], None] | None = None,
    initial: Run | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Run:
    """Poll ``run_id`` until it ends and return its final snapshot.

    ``deadline`` is a ``clock()`` time (monotonic by default); past it,
    `SandboxTimeoutError`. ``on_update`` is called once per observed change, in order;
    ``initial`` (typically what `create_run` returned) counts as already seen, so it is
    not reported, and if it has already ended no request is made. Without ``initial``
    the first poll is immediate, with it the first poll follows ``min_interval``.
    """
    last = initial
    if last is not None and last.is_terminal:
        return last
    last_key = progress_key(last) if last is not None else None
    last_error: SandboxError | None = None
    started = clock()
    interval = policy.min_interval
    wait_first = initial is not None
    looked_last = False
    outage_since: float | None = None  # when the current run of failed polls began

    while True:
        if wait_first:
            now = clock()
            if deadline is not None and now >= deadline:
                raise _timed_out(run_id, last, started, now, last_error)
            pause = interval if deadline is None else min(interval, deadline - now)
            await sleep(pause)
        wait_first = True

        now = clock()
        budget = None if deadline is None else deadline - now
        if budget is not None and budget <= 0:
            if looked_last:
                raise _timed_out(run_id, last, started, now, last_error)
            # The pause ended right at the deadline: one last look, briefly.
            looked_last, budget = True, _LAST_LOOK
        try:
            async with asyncio.timeout(budget):
                run = await client.get_run(sandbox_id, run_id)
        except _TRANSIENT as exc:
            last_error = exc
            interval = policy.next_interval(interval)
            if isinstance(exc, RateLimitedError):
                if exc.retry_after:
                    interval = max(interval, min(exc.retry_after, _MAX_RATE_LIMIT_PAUSE))
                continue  # a server that rate-limits is there: not an outage
            outage_since = now if outage_since is None else outage_since
            if clock() - outage_since >= policy.max_outage:
                raise _lost(run_id, clock() - outage_since, exc) from exc
            continue
        except TimeoutError:
            # Our own deadline cut a slow poll (e.g. one the client kept retrying).
            raise _timed_out(run_id, last, started, clock(), last_error) from None

        last_error = outage_since = None
        key = progress_key(run)
        if key != last_key:
            last, last_key = run, key
            interval = policy.min_interval
            if on_update is not None:
                on_update(run)
        else:
            last = run
            interval = policy.next_interval(interval)
        if run.is_terminal:
            return run


def _lost(run_id: str, seconds: float, error: SandboxError) -> SandboxError:
    """The error that ends a wait after every poll failed for ``seconds``."""
    after = (
        f"no answer about run {run_id} for {seconds:.0f} s, so the wait stopped. "
        "The run may still be going there: once the server is back, it can be followed again"
    )
    lost: SandboxError
    if isinstance(error, SandboxConnectionError):
        lost = SandboxConnectionError(error.url, f"{error.detail}; {after}")
    else:
        lost = SandboxTimeoutError(f"The sandbox server failed every poll ({error}): {after}.")
    lost.run_id = run_id
    return lost


def _timed_out(
    run_id: str, last: Run | None, started: float, now: float, error: SandboxError | None
) -> SandboxTimeoutError:
    state = f"still {last.status}" if last is not None else "its status unknown"
    message = (
        f"Stopped waiting for run {run_id} after {now - started:.1f} s ({state}): the "
        "local deadline passed. The run may still be going on the server."
    )
    if error is not None:
        message += f" The last poll failed: {error}"
    timed_out = SandboxTimeoutError(message)
    timed_out.run_id = run_id
    return timed_out
