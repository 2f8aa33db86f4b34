"""One blocking ``%%sandbox`` cell: submit, follow the run, render what it produced.

The run is followed on the I/O thread; each new snapshot travels to the cell's own
thread through a queue, where outputs are rendered in the order they happened and the
status view is updated. The notebook's stop button raises ``KeyboardInterrupt`` here:
the run is cancelled on the server and followed until the server says it ended.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sandbox_magic.client import OutputCursor, PollPolicy, Run, SandboxError, SandboxTimeoutError
from sandbox_magic.notebook.status import RunSummary, StatusView
from sandbox_magic.render.display_ids import DisplayChanges
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import RunRequest, SandboxSession

__all__ = ["CellRun", "FollowSettings"]

_T = TypeVar("_T")
_TICK = 0.1
#: Seconds a stopped cell still waits for its submission's answer, to cancel that run.
_SUBMIT_LANDING = 10.0


@dataclass(frozen=True)
class FollowSettings:
    """How closely to follow a run, and how long to wait for a cancel to land."""

    poll: PollPolicy
    cancel_grace: float = 30.0


class CellRun:
    """One blocking cell's run, from submission to its last output.

    Use it as a context manager: it is the one caller of its status view's
    ``finish`` (leaving the summary, or taking the live line away when the cell fails
    before that), unless the view was handed over to a background run.
    """

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
        self.displays = DisplayChanges()
        self._handed_over = False
        self._stop_requested = False  # the stop button was pressed during the submit
        #: The run as the server made it, as soon as it has (set from either thread).
        self.created: Run | None = None

    def __enter__(self) -> CellRun:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self._handed_over:
            self.finish(None)

    def finish(self, final: Run | RunSummary | None) -> None:
        """Leave the summary of ``final`` (nothing for None); later calls do nothing."""
        self.view.finish(final)

    @property
    def stop_requested(self) -> bool:
        """The stop button was pressed while the run was being submitted."""
        return self._stop_requested

    def hand_over(self) -> StatusView:
        """Give the status view to whoever follows the run from now on."""
        self._handed_over = True
        return self.view

    def wait(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` on the I/O loop, ticking the view while the cell waits for it."""
        return self._wait(self.io.submit(work))

    def _wait(self, future: concurrent.futures.Future[_T]) -> _T:
        while True:
            try:
                return future.result(_TICK)
            except concurrent.futures.TimeoutError:
                self.view.tick()

    def submit(self, request: RunRequest) -> Run:
        """Submit the cell's run; returns it as the server made it, or already ended.

        A server that can hold the answer sends a short run back whole. On the stop
        button the run, once made, is still returned: `follow` then cancels it and
        reports it cancelled, as for a stop pressed while it ran.
        """
        self.view.tick()  # a status line due at once shows while the submit is held
        try:
            quick = self.session.submit_now(request, on_created=self._made)
        except KeyboardInterrupt:
            if self.created is None:  # the same request again finds the run, if made
                self._land(self.io.submit(self.session.submit(request, on_created=self._made)))
            return self.stop_made_run()
        if quick is not None:
            return quick
        future = self.io.submit(self.session.submit(request, on_created=self._made))
        try:
            return self._wait(future)
        except Exception:
            self.finish(None)  # no run: take the live "submitting" line away
            raise
        except KeyboardInterrupt:
            self._land(future)
            return self.stop_made_run()

    def stop_made_run(self) -> Run:
        """For a stop pressed around the submit: the run made, which `follow` will
        cancel; re-raises ``KeyboardInterrupt`` when no run was made."""
        if self.created is None:
            raise KeyboardInterrupt
        self._stop_requested = True
        return self.created

    def _made(self, run: Run) -> None:
        if self.created is None:
            self.created = run

    @staticmethod
    def _land(future: concurrent.futures.Future[Run]) -> None:
        """Wait a while for a stopped cell's submit to land (a second stop gives up)."""
        with contextlib.suppress(Exception, KeyboardInterrupt):
            future.result(_SUBMIT_LANDING)

    def follow(self, run: Run) -> Run:
        """Render the run's outputs as they arrive; returns the final run record."""
        # Snapshots from the poll, then None once it is over (so no tick is waited out).
        updates: queue.SimpleQueue[Run | None] = queue.SimpleQueue()
        poll: concurrent.futures.Future[Run] | None = None
        try:
            # All inside the handler: a stop pressed at any point from here on (even as
            # the submit's first output shows) still cancels the run.
            stop_requested, self._stop_requested = self._stop_requested, False
            if run.is_terminal:  # the submit's answer already holds the whole run
                self._show(run)
                return run
            poll = self._start_poll(run, updates)
            self._show(run)
            if stop_requested:
                raise KeyboardInterrupt
            return self._drain(poll, updates)
        except KeyboardInterrupt:
            if run.is_terminal:
                raise  # nothing left to cancel
            return self._cancel(run, poll or self._start_poll(run, updates), updates)
        except SandboxError as exc:
            self.finish(None)  # take the live line away: nothing follows it now
            if run.id in str(exc):
                raise  # the poller's message already names the run
            raise SandboxError(
                f"Lost track of run {run.id}: {exc} "
                f"`%sandbox attach {run.id}` follows it again once the server answers."
            ) from exc

    def _start_poll(
        self, run: Run, updates: queue.SimpleQueue[Run | None]
    ) -> concurrent.futures.Future[Run]:
        poll = self.io.submit(
            self.session.follow(run, policy=self.settings.poll, on_update=updates.put)
        )
        poll.add_done_callback(lambda _poll: updates.put(None))
        return poll

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
        outputs = self.cursor.advance(run.execution)
        if self.cursor.cleared:
            self.sink.clear()
            self.view.outputs_cleared()
        if outputs:
            self.view.reserve()  # the status line sits above the cell's first output
        for output in outputs:
            latest = self.sink.emit(output) or latest
        for changed in self.displays.changed(run.execution.results, self.cursor.counts[2]):
            self.sink.update_result(changed)
        self.view.update(run, latest)

    def _cancel(
        self,
        run: Run,
        poll: concurrent.futures.Future[Run],
        updates: queue.SimpleQueue[Run | None],
    ) -> Run:
        """Ask the server to cancel, then keep following until it says the run ended."""
        self.view.cancelling()
        cancel = self.io.submit(self.session.cancel(run))
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
