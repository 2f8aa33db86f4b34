"""Watching a run: one held-open response that carries each change as it happens.

``GET .../code/runs/{id}?watch_ms=N[&after_version=V]`` answers ``application/x-ndjson``:
one line ``{"version": v, "run": {...}}`` per snapshot. The first line comes at once
unless ``after_version`` is the run's current version (nothing new to tell); later
lines follow each change of the run. The response ends after the terminal snapshot,
or once N ms have passed without the run ending (the client then asks again with the
last version it got, so it misses nothing in between).

A busy run (output every few microseconds) would otherwise cost one whole snapshot per
chunk; snapshots are at least `MIN_GAP` apart, except the terminal one, which leaves
as soon as the run ends.

``POST .../code/runs?wait_ms=N`` (`settle`) holds the creation answer until the run
has ended, or shortly after its first output, at most N ms: a short run then costs one
request, and output is never held back by more than `SETTLE_LINGER`. A client that
accepts NDJSON gets the created run as a first line at once (`settled_lines`), so it
knows the run even if the answer breaks off while it is held.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

from sandbox_magic.server.runs import RunState
from sandbox_magic.wire import TERMINAL_STATUSES

__all__ = ["MAX_WATCH_MS", "MIN_GAP", "settle", "settled_lines", "watch_lines"]

#: Longest hold of one watch response (below the 30 s read timeout of clients).
MAX_WATCH_MS: Final = 25_000
#: Seconds between two snapshots of a run that keeps changing.
MIN_GAP: Final = 0.02
#: Seconds a held submit still waits for the run to end once it has shown output.
SETTLE_LINGER: Final = 0.05


def _line(version: int, record: dict[str, Any]) -> bytes:
    return json.dumps({"version": version, "run": record}).encode() + b"\n"


async def watch_lines(
    live: RunState | None,
    read: Callable[[], dict[str, Any]],
    *,
    after: int | None,
    within: float,
    gap: float = MIN_GAP,
) -> AsyncIterator[bytes]:
    """The NDJSON lines of one watch response.

    ``live`` is the in-memory run (None once it has finished and only the store has
    it); ``read`` gives its current record.
    """
    if live is None:
        yield _line(0, read())
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    sent = after
    last_sent = -gap
    while True:
        if live.terminal or sent is None or live.version > sent:
            pause = last_sent + gap - loop.time()
            if pause > 0 and not live.terminal:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.done.wait(), pause)
            version, record = live.version, read()
            yield _line(version, record)
            if record.get("status") in TERMINAL_STATUSES:
                return
            sent, last_sent = version, loop.time()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        await live.wait_for_change(after=sent, within=remaining)


async def settle(live: RunState, *, within: float, linger: float = SETTLE_LINGER) -> None:
    """Return once ``live`` has ended, or ``linger`` s after its first output, or after
    ``within`` s: a run that ends right after its output (``1+1``) answers complete.

    Once the code's result or error has come, only the kernel's end of the request is
    left (its post-run hooks, the idle): that is waited for, up to ``within``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    output_since: float | None = None
    while not live.terminal:
        now = loop.time()
        if output_since is None and (live.recorder.order or live.recorder.error is not None):
            output_since = now
        limit = deadline
        if output_since is not None and not live.recorder.code_over:
            limit = min(deadline, output_since + linger)
        if now >= limit:
            return
        await live.wait_for_change(after=live.version, within=limit - now)


async def settled_lines(
    live: RunState, read: Callable[[], dict[str, Any]], *, within: float
) -> AsyncIterator[bytes]:
    """A held submit as NDJSON: the created run now, then the run once it settles."""
    version = live.version
    yield _line(version, read())
    if live.terminal:
        return
    await settle(live, within=within)
    yield _line(live.version, read())
