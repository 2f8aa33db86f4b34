"""One blocking ``%%sandbox`` cell: submit, follow the run, render what it produced.

The run is followed on the I/O thread; each new snapshot travels to the cell's own
thread through a queue, where outputs are rendered in the order they happened and the
status view is updated. The notebook's stop button raises ``KeyboardInterrupt`` here:
the run is cancelled on the server and followed until the server says it ended.
"""

from __future__ import annotations

import concurrent.futures
import queue
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sandbox_magic.client._cursor import OutputCursor
from sandbox_magic.client._errors import SandboxError, SandboxTimeoutError
from sandbox_magic.client._models import Run
from sandbox_magic.client._poller import PollPolicy, poll_run, run_deadline
from sandbox_magic.notebook.status import StatusView
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import SandboxSession

__all__ = ["CellRun", "FollowSettings"]

_T = TypeVar("_T")
_TICK = 0.1


@dataclass(frozen=True)
class FollowSettings:
    """How closely to follow a run, and how long to wait for a cancel to land."""

    poll: PollPolicy
    cancel_grace: float = 30.0


class CellRun:
    """Follows one run to its end on behalf of the cell that started it."""

    def __init__(
        self,
        io: IOLoopThread,
        session: SandboxSession,
        sink: OutputSink,
        view: StatusView,
        settings: FollowSettings,
    ) -> None:
        self.io = io
        self.session = session
        self.sink = sink
        self.view = view
        self.settings = settings
        self.cursor = OutputCursor()

    def wait(self, future: concurrent.futures.Future[_T], on_tick: Callable[[], None]) -> _T:
        """Wait for a future from the cell's thread, ticking the view meanwhile."""
        while True:
            try:
                return future.result(_TICK)
            except concurrent.futures.TimeoutError:
                on_tick()

    def follow(self, run: Run) -> Run:
        """Render the run's outputs as they arrive; returns the final run record."""
        if run.is_terminal:  # the submit's answer already holds the whole run
            self._show(run)
            return run
        # Snapshots from the poll, then None once it is over (so no tick is waited out).
        updates: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        client = self.io.run(self.session.client())
        poll = self.io.submit(
            poll_run(
                client,
                run.sandbox_id or self.session.sandbox_id or "",
                run.id,
                policy=self.settings.poll,
                deadline=run_deadline(run),
                on_update=updates.put,
                initial=run,
            )
        )
        poll.add_done_callback(lambda _poll: updates.put(None))
        try:
            # Inside the handler: the submit's answer may already carry output, and a
            # stop pressed as soon as it shows must still cancel the run.
            self._show(run)
            return self._drain(poll, updates)
        except KeyboardInterrupt:
            return self._cancel(run, poll, updates)
        except SandboxError as exc:
            self.view.finish(None)  # take the live line away: nothing follows it now
            if run.id in str(exc):
                raise  # the poller's message already names the run and how to re-attach
            raise SandboxError(
                f"Lost track of run {run.id}: {exc} "
                f"`%sandbox attach {run.id}` follows it again once the server answers."
            ) from exc

    def _drain(
        self, poll: concurrent.futures.Future[Run], updates: queue.SimpleQueue[Run | None]
    ) -> Run:
        while True:
            try:
                update = updates.get(timeout=_TICK)
            except queue.Empty:
                if not poll.done():
                    self.view.tick()
                    continue
            else:
                if update is None:  # the poll is over
                    update = poll.result()
                self._show(update)
                # A terminal snapshot is the poll's last: take its result at once
                # rather than after another tick.
                if not update.is_terminal and not poll.done():
                    continue
            while not updates.empty():
                if (pending := updates.get_nowait()) is not None:
                    self._show(pending)
            final = poll.result()
            self._show(final)
            return final

    def render(self, run: Run) -> None:
        """Render every output of a run not shown yet (all of them for a new cursor)."""
        self._show(run)

    def _show(self, run: Run) -> None:
        latest: str | None = None
        outputs = self.cursor.advance(run.execution, final=run.is_terminal)
        if self.cursor.cleared:
            self.sink.clear()
            self.view.outputs_cleared()
        for output in outputs:
            latest = self.sink.emit(output) or latest
        self.view.update(run, latest)

    def _cancel(
        self,
        run: Run,
        poll: concurrent.futures.Future[Run],
        updates: queue.SimpleQueue[Run | None],
    ) -> Run:
        """Ask the server to cancel, then keep following until it says the run ended."""
        self.view.cancelling()
        client = self.io.run(self.session.client())
        sandbox_id = run.sandbox_id or self.session.sandbox_id or ""
        cancel = self.io.submit(client.cancel_run(sandbox_id, run.id))
        deadline = time.monotonic() + self.settings.cancel_grace
        try:
            while time.monotonic() < deadline:
                try:
                    if (update := updates.get(timeout=_TICK)) is not None:
                        self._show(update)
                except queue.Empty:
                    self.view.tick()
                if poll.done():
                    break
            else:
                poll.cancel()
                raise SandboxTimeoutError(
                    f"Cancel of run {run.id} was sent but the server had not confirmed it "
                    f"after {self.settings.cancel_grace:.0f} s. "
                    f"Check with `%sandbox attach {run.id}`."
                )
        except KeyboardInterrupt:
            poll.cancel()
            raise SandboxError(
                f"Stopped waiting for run {run.id}; it may still be running remotely. "
                f"`%sandbox attach {run.id}` follows it, `%sandbox cancel {run.id}` cancels it."
            ) from None
        if (error := cancel.exception()) is not None and not poll.done():
            raise error
        final = poll.result()
        self._show(final)
        return final
