"""Follow a run over held-open watch requests, on servers that offer them.

The server advertises ``run-watch`` (`sandbox_magic.wire`); one request then
stays open until the run ends or the server's bounded wait passes, and carries every
change of the run the moment it happens. A run costs one request per wait (about 25 s)
instead of one per poll, and output reaches the cell within milliseconds.

Same contract as `sandbox_magic.client._poller.poll_run` (`follow_run` picks one or the
other): ``on_update`` once per observed change, in order; the
final snapshot returned; deadline, outage and rate-limit handling alike. A server that
stops offering the watch (it answered a plain snapshot) is polled from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Protocol

from sandbox_magic.client._errors import RateLimitedError, SandboxError
from sandbox_magic.client._models import Run
from sandbox_magic.client._poller import (
    _LAST_LOOK,
    _MAX_RATE_LIMIT_PAUSE,
    _TRANSIENT,
    PollPolicy,
    RunSource,
    _lost,
    _timed_out,
    poll_run,
    progress_key,
)
from sandbox_magic.wire import ServerFeatures

__all__ = [
    "MAX_WAIT",
    "SUBMIT_SETTLE",
    "WatchSource",
    "can_watch",
    "follow_run",
]

#: Longest hold asked of the server, in seconds (it may allow less).
MAX_WAIT = 25.0
#: How long a submit may wait for its run to end or show output (one request for a
#: short run); on servers that can watch runs.
SUBMIT_SETTLE = 0.25


class WatchSource(Protocol):
    """What watching needs from a client (`AsyncSandboxClient` is one)."""

    @property
    def features(self) -> ServerFeatures: ...

    def watch_run(
        self, sandbox_id: str, run_id: str, *, wait: float, after_version: int | None = None
    ) -> AsyncGenerator[tuple[int, Run]]: ...

    def watch_slot(self) -> contextlib.AbstractContextManager[bool]: ...

    async def get_run(self, sandbox_id: str, run_id: str) -> Run: ...


async def follow_run(
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
    """Follow a run to its end: over watches where the server offers them (within half
    the client's connections), else by `poll_run`. Same arguments, callbacks and errors
    as `poll_run`."""
    if initial is not None and initial.is_terminal:
        return initial
    with contextlib.ExitStack() as stack:
        follow: Callable[..., Awaitable[Run]] = poll_run
        if can_watch(client) and stack.enter_context(client.watch_slot()):  # type: ignore[attr-defined]
            follow = _watch
        return await follow(
            client,
            sandbox_id,
            run_id,
            policy=policy,
            deadline=deadline,
            on_update=on_update,
            initial=initial,
            sleep=sleep,
            clock=clock,
        )


def can_watch(client: object) -> bool:
    """True when ``client`` talks to a server that advertised run watching."""
    features = getattr(client, "features", None)
    return (
        isinstance(features, ServerFeatures)
        and features.can_watch
        and callable(getattr(client, "watch_run", None))
    )


async def _watch(
    client: WatchSource,
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
    last = initial
    last_key = progress_key(last) if last is not None else None
    version: int | None = None
    last_error: SandboxError | None = None
    outage_since: float | None = None
    pause = 0.0
    started = clock()

    while True:
        if not can_watch(client):  # the server stopped offering it: poll instead
            return await poll_run(
                client,
                sandbox_id,
                run_id,
                policy=policy,
                deadline=deadline,
                on_update=on_update,
                initial=last,
                sleep=sleep,
                clock=clock,
            )
        now = clock()
        budget = None if deadline is None else deadline - now
        if budget is not None and budget <= 0:
            raise _timed_out(run_id, last, started, now, last_error)
        limit = (client.features.watch_max_ms or 0) / 1000
        wait = min(MAX_WAIT, limit) if budget is None else max(0.001, min(MAX_WAIT, limit, budget))
        opened, seen = clock(), 0
        final: Run | None = None
        try:
            async with asyncio.timeout(None if budget is None else budget + _LAST_LOOK):
                stream = client.watch_run(sandbox_id, run_id, wait=wait, after_version=version)
                async with contextlib.aclosing(stream):
                    async for seen_version, run in stream:
                        seen += 1
                        version = seen_version
                        last_error = outage_since = None
                        key = progress_key(run)
                        if key != last_key:
                            last, last_key = run, key
                            if on_update is not None:
                                on_update(run)
                        else:
                            last = run
                        if run.is_terminal:
                            final = run  # read on to the end: the connection is reused
        except _TRANSIENT as exc:
            last_error = exc
            pause = policy.next_interval(pause) if pause else policy.min_interval
            if isinstance(exc, RateLimitedError):
                if exc.retry_after:
                    pause = max(pause, min(exc.retry_after, _MAX_RATE_LIMIT_PAUSE))
            else:
                outage_since = now if outage_since is None else outage_since
                if clock() - outage_since >= policy.max_outage:
                    raise _lost(run_id, clock() - outage_since, exc) from exc
            await sleep(pause)
            continue
        except TimeoutError:
            raise _timed_out(run_id, last, started, clock(), last_error) from None
        if final is not None:
            return final
        if seen == 0 and clock() - opened < wait / 2:
            # An empty answer long before the wait passed: do not hammer such a server.
            pause = policy.next_interval(pause) if pause else policy.min_interval
            await sleep(pause)
        else:
            pause = 0.0
