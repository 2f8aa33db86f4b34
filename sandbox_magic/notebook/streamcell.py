"""One ``%%sandbox`` cell on a server without async runs: streamed, rendered as it comes.

The stream is consumed on the I/O thread (`sandbox_magic.session.streaming`); its snapshots
reach the cell's thread through a queue and go through the same `CellRun` rendering
as polled runs. The notebook's stop button interrupts the context (a streamed
execution has no run to cancel) and keeps reading until the server ends the stream,
for at most ``cancel_grace`` seconds; then the stream is closed, which ends the
execution on the server too.
"""

from __future__ import annotations

import concurrent.futures
import queue
import time

from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._models import Run
from sandbox_magic.client._streamed import StreamFold
from sandbox_magic.notebook.cellrun import CellRun
from sandbox_magic.session.streaming import stream_to_end

__all__ = ["follow_streamed"]

_TICK = 0.1


def follow_streamed(
    cell: CellRun,
    client: AsyncSandboxClient,
    fold: StreamFold,
    *,
    code: str,
    envs: dict[str, str] | None = None,
) -> Run:
    """Stream ``code``, render its outputs as they arrive; returns the final snapshot."""
    updates: queue.SimpleQueue[Run] = queue.SimpleQueue()
    future = cell.io.submit(
        stream_to_end(client, fold, code=code, envs=envs, on_update=updates.put)
    )
    try:
        return _drain(cell, future, updates)
    except KeyboardInterrupt:
        return _interrupt(cell, client, fold, future, updates)


def _drain(
    cell: CellRun, future: concurrent.futures.Future[Run], updates: queue.SimpleQueue[Run]
) -> Run:
    while not future.done():
        try:
            cell.render(updates.get(timeout=_TICK))
        except queue.Empty:
            cell.view.tick()
    while not updates.empty():
        cell.render(updates.get_nowait())
    final = future.result()
    cell.render(final)
    return final


def _interrupt(
    cell: CellRun,
    client: AsyncSandboxClient,
    fold: StreamFold,
    future: concurrent.futures.Future[Run],
    updates: queue.SimpleQueue[Run],
) -> Run:
    """Interrupt the context, then read the stream to its end (bounded)."""
    cell.view.cancelling()
    fold.interrupted = True
    if fold.context_id is not None:
        sent = cell.io.submit(client.interrupt_context(fold.sandbox_id, fold.context_id))
        sent.add_done_callback(lambda f: f.exception())
    deadline = time.monotonic() + cell.settings.cancel_grace
    try:
        while not future.done() and time.monotonic() < deadline:
            try:
                cell.render(updates.get(timeout=_TICK))
            except queue.Empty:
                cell.view.tick()
    except KeyboardInterrupt:
        pass  # a second stop: give up waiting at once
    if future.done() and not future.cancelled() and future.exception() is None:
        return _drain(cell, future, updates)
    future.cancel()  # closing the stream ends the execution on the server
    fold.finish(
        status="cancelled",
        reason="interrupted from the notebook; the server had not ended the stream, "
        "so it was closed",
    )
    final = fold.snapshot()
    while not updates.empty():
        cell.render(updates.get_nowait())
    cell.render(final)
    return final
