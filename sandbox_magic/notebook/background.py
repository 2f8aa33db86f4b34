"""``%%sandbox --background``: runs that keep going while the notebook does other work.

The cell returns as soon as the run is created. Its status view (with a Cancel button
in a widget frontend) is followed on the I/O loop; when the run ends, the view's
output is replaced in place by everything the run produced, rendered as one bundle.
All background runs share the session's connection pool and the one I/O loop.

``%sandbox wait`` blocks until runs end and then publishes each final bundle again
from the waiting cell, so that headless runners (nbclient, papermill), which only
record messages of the cell they are executing, save the outputs into the cell that
started the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from sandbox_magic.client import OutputCursor, PollPolicy, Run, StreamChunk, ordered_outputs
from sandbox_magic.notebook.hints import with_hint
from sandbox_magic.notebook.status import RunSummary, StatusView
from sandbox_magic.render.composite import composite_bundle
from sandbox_magic.render.publish import display_bundle
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.render.streams import last_line
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import SandboxSession

if TYPE_CHECKING:
    from sandbox_magic.notebook.options import RunOptions

__all__ = ["BackgroundRun", "BackgroundRuns"]

_TICK = 0.5


@dataclass
class BackgroundRun:
    """One run started with ``--background`` and what is known of it."""

    run: Run
    view: StatusView
    options: RunOptions
    session: SandboxSession
    sink: OutputSink
    started: float = field(default_factory=time.monotonic)
    future: concurrent.futures.Future[Run] | None = None
    final_bundle: dict[str, str] | None = None
    #: Reported by a `%sandbox wait` already (a wait without ids skips it).
    waited: bool = False

    @property
    def done(self) -> bool:
        return self.future is not None and self.future.done()


class BackgroundRuns:
    """The background runs of one session; each one's status view is finished here."""

    def __init__(self, io: IOLoopThread) -> None:
        self.io = io
        self.runs: dict[str, BackgroundRun] = {}

    def start(
        self,
        session: SandboxSession,
        run: Run,
        view: StatusView,
        options: RunOptions,
        sink: OutputSink,
        policy: PollPolicy,
    ) -> BackgroundRun:
        """Follow a freshly created run in the background."""
        entry = BackgroundRun(run, view, options, session, sink)
        view.start(run, context=options.context)
        if view.can_cancel:
            view.on_cancel = lambda: self.cancel(run.id)
        entry.future = self.io.submit(self._follow(entry, policy))
        self.runs[run.id] = entry
        return entry

    def cancel(self, run_id: str) -> None:
        """Ask the server to cancel a background run (from the Cancel button)."""
        entry = self.runs.get(run_id)
        if entry is None or entry.done:
            return
        entry.view.cancelling()
        self.io.submit(entry.session.cancel(entry.run))

    async def _follow(self, entry: BackgroundRun, policy: PollPolicy) -> Run:
        cursor = OutputCursor()

        def on_update(run: Run) -> None:
            latest = None
            for output in cursor.advance(run.execution):
                if isinstance(output, StreamChunk):
                    latest = last_line(output.text) or latest
            entry.view.update(run, latest)

        ticker = asyncio.get_running_loop().create_task(self._tick(entry.view))
        try:
            final = await entry.session.follow(entry.run, policy=policy, on_update=on_update)
        finally:
            ticker.cancel()
        entry.final_bundle = self._final_bundle(entry, final)
        self._publish(entry)
        return final

    @staticmethod
    async def _tick(view: StatusView) -> None:
        while True:
            await asyncio.sleep(_TICK)
            view.tick()

    @staticmethod
    def _final_bundle(entry: BackgroundRun, final: Run) -> dict[str, str]:
        sink = entry.sink
        summary = RunSummary.from_run(
            final, duration=time.monotonic() - entry.started, context=entry.options.context
        )
        # Notes the live line carried (e.g. the embedded server's start) stay visible.
        summary = dataclasses.replace(summary, notes=tuple(entry.view.notes))
        return composite_bundle(
            ordered_outputs(final.execution),
            allow_javascript=sink.allow_javascript,
            max_bytes=sink.max_output_bytes,
            redactor=sink.redactor,
            error=final.execution.error,
            summary=summary.redacted(sink.redactor).text(),
        )

    @staticmethod
    def _publish(entry: BackgroundRun) -> None:
        """Replace the run's status output with its final bundle."""
        if entry.final_bundle is None:
            return
        handle = entry.view.handle
        entry.view.finish(None)
        if handle is not None:
            handle.update(entry.final_bundle)
        else:
            display_bundle(entry.final_bundle)

    def wait(self, run_ids: list[str], timeout: float | None = None) -> None:
        """Block until the runs (all background runs by default) end."""
        unknown = [r for r in run_ids if r not in self.runs]
        if unknown:
            raise UsageError(f"Not a background run of this session: {', '.join(unknown)}.")
        if run_ids:
            entries = [self.runs[r] for r in run_ids]
        else:
            entries = [entry for entry in self.runs.values() if not entry.waited]
        if not entries:
            print("No background runs to wait for (earlier waits reported them all).")
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for entry in entries:
                assert entry.future is not None
                while not entry.future.done():
                    if deadline is not None and time.monotonic() >= deadline:
                        raise TimeoutError
                    concurrent.futures.wait([entry.future], timeout=0.1)
        except KeyboardInterrupt:
            print("Stopped waiting; the background runs go on.")
            return
        except TimeoutError:
            pending = [e.run.id for e in entries if not e.done]
            print(f"Still running after {timeout} s: {', '.join(pending)}.")
        self._report(entries)

    def _report(self, entries: list[BackgroundRun]) -> None:
        for entry in entries:
            if not entry.done:
                continue
            assert entry.future is not None
            error = entry.future.exception()
            if error is not None:
                print(f"{entry.run.id}: could not be followed: {with_hint(error)}")
                continue
            # Publish again from this cell so headless runners record it.
            handle = entry.view.handle
            if handle is not None and entry.final_bundle is not None:
                handle.update(entry.final_bundle)
            final = entry.future.result()
            reason = f" ({final.failure_reason})" if final.failure_reason else ""
            print(f"{final.id}: {final.status}{reason}")
            entry.waited = True

    def results(self) -> dict[str, Any]:
        """Finished runs by id (for tests and scripts)."""
        return {
            run_id: entry.future.result()
            for run_id, entry in self.runs.items()
            if entry.future is not None and entry.future.done() and not entry.future.exception()
        }
