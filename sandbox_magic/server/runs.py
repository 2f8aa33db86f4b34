"""Runs and the per-context queue that executes them.

Each context owns one kernel and one worker task: runs of a context execute one at a
time, in submission order; contexts run in parallel.

Outcomes (the contract leaves the first one open; this is our choice):

- the code raised -> ``failed``, ``failure_reason`` "the code raised NameError: ...",
  and ``execution.error`` set (name, value, traceback);
- the code finished -> ``succeeded``;
- ``timeout`` seconds passed -> the kernel is interrupted; if it has not stopped
  after the grace period it is restarted. ``failed``, "timed out after N s" (plus a
  note when the restart lost the context's variables);
- cancel of a queued run -> ``cancelled`` at once; of a running run -> interrupt
  (restart after the grace period), ``cancelled``. ``execution`` keeps the output so
  far, including the ``KeyboardInterrupt`` error the interrupt caused;
- the kernel process died -> it is restarted, ``failed``, with a reason saying so.

An interrupt that works leaves the kernel and its variables in place.

``envs`` of a run are applied just around that run: before it, one silent request
sets them in ``os.environ`` and reads back the previous values; after it, another
puts those back (Python kernels; other languages get ``envs`` only at start).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, NamedTuple

from sandbox_magic.server import artifacts as artifact_files
from sandbox_magic.server.display_artifacts import store_display_image
from sandbox_magic.server.execution import ExecutionRecorder
from sandbox_magic.server.kernels import Kernel, KernelDiedError
from sandbox_magic.server.store import INTERRUPTED_REASON, Store
from sandbox_magic.server.util import iso, now, now_iso
from sandbox_magic.wire import (
    CANCELLED,
    CODE_RAISED,
    KERNEL_DIED,
    SERVER_STOPPED,
    TERMINAL_STATUSES,
    TIMED_OUT,
)

__all__ = ["SERVER_STOPPED_OUTCOME", "ContextRuntime", "Outcome", "RunState", "cancelled"]

log = logging.getLogger(__name__)

_INLINE_SNAPSHOT_FILES: Final = 200
_RESTART_NOTE: Final = (
    "; the kernel did not stop when interrupted and was restarted, "
    "so the context's variables are lost"
)


class Outcome(NamedTuple):
    """How a run ends: its status, the reason in words, and the reason's code."""

    status: str
    reason: str | None = None
    code: str | None = None


def cancelled(reason: str) -> Outcome:
    """A cancellation, for ``reason``."""
    return Outcome("cancelled", reason, CANCELLED)


_CANCELLED_BY_REQUEST: Final = cancelled("cancelled by request")
SERVER_STOPPED_OUTCOME: Final = Outcome("failed", INTERRUPTED_REASON, SERVER_STOPPED)


@dataclass(eq=False)
class RunState:
    """One run, live: the record the API shows and the signals that steer it."""

    id: str
    sandbox_id: str
    context_id: str
    code: str
    envs: dict[str, str]
    timeout_secs: int
    retention: timedelta
    created_at: str = field(default_factory=now_iso)
    status: str = "queued"
    started_at: str | None = None
    completed_at: str | None = None
    cancel_requested_at: str | None = None
    failure_reason: str | None = None
    failure_code: str | None = None
    recorder: ExecutionRecorder = field(default_factory=ExecutionRecorder)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when the run must stop early; `stop_outcome` says how it ends.
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stop_outcome: Outcome = field(default_factory=lambda: _CANCELLED_BY_REQUEST)
    stop_interrupts: bool = True
    #: Set once the kernel has begun executing the code (an interrupt now reaches it).
    executing: asyncio.Event = field(default_factory=asyncio.Event)
    expires_at: str = ""
    #: Leave processes the code started running after it ends (else they are killed).
    keep_processes: bool = False

    #: Grows on every visible change (status, output); see `wait_for_change`.
    version: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if not self.expires_at:
            self.expires_at = iso(now() + self.retention)
        self.recorder.listen(lambda _event: self.touch())

    def touch(self) -> None:
        """Record a change and wake long-polling readers."""
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, *, after: int | None, within: float) -> None:
        """Return once ``version`` exceeds ``after`` (default: now), or at the timeout."""
        if self.terminal or (after is not None and self.version > after):
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), within)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sandbox_id": self.sandbox_id,
            "context_id": self.context_id,
            "status": self.status,
            "timeout_secs": self.timeout_secs,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "cancel_requested_at": self.cancel_requested_at,
            "execution": self.recorder.to_json(),
            "failure_reason": self.failure_reason,
            "failure_code": self.failure_code,
        }

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def request_stop(self, outcome: Outcome, *, interrupt: bool = True) -> None:
        """Ask a running run to end (first request wins)."""
        if self.stop.is_set():
            return
        self.stop_outcome, self.stop_interrupts = outcome, interrupt
        if self.cancel_requested_at is None and outcome.status == "cancelled":
            self.cancel_requested_at = now_iso()
        self.stop.set()


#: Prepares a (re)started kernel: working directory and the sandbox's environment.
Preparer = Callable[[Kernel], Awaitable[None]]


class ContextRuntime:
    """A context: its kernel, its FIFO of runs and the worker that executes them."""

    def __init__(
        self,
        *,
        context_id: str,
        sandbox_id: str,
        language: str,
        cwd: Path,
        kernel: Kernel,
        prepare: Preparer,
        store: Store,
        on_finish: Callable[[RunState], None],
        interrupt_grace: float,
        max_artifact_bytes: int,
        shown_cwd: str | None = None,
        memory_limit_mb: int | None = None,
        oom_kills: Callable[[], int] | None = None,
    ) -> None:
        self.id = context_id
        self.sandbox_id = sandbox_id
        self.language = language
        self.cwd = cwd
        #: The working directory as the code sees it (under isolation: ``/workspace``).
        self.shown_cwd = shown_cwd or str(cwd)
        #: The sandbox's memory limit, if one is enforced: running out of it restarts.
        self.memory_limit_mb = memory_limit_mb
        #: How many processes of the sandbox its cgroup's OOM killer has killed so far.
        self._oom_kills = oom_kills
        self._oom_seen = oom_kills() if oom_kills is not None else 0
        self.kernel = kernel
        self._prepare = prepare
        self._store = store
        self._on_finish = on_finish
        self._grace = interrupt_grace
        self._max_artifact_bytes = max_artifact_bytes
        self._queue: deque[RunState] = deque()
        self._wake = asyncio.Event()
        self._kernel_lock = asyncio.Lock()
        self.current: RunState | None = None
        self._snapshot_size = 0
        self._worker = asyncio.create_task(self._work(), name=f"context-{context_id}")
        self._closed = False

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "language": self.language, "cwd": self.shown_cwd}

    @property
    def busy(self) -> bool:
        """A run is running or queued."""
        return self.current is not None or bool(self._queue)

    # -- queue -----------------------------------------------------------------------

    def submit(self, run: RunState) -> None:
        """Queue a run (already stored as ``queued``)."""
        self._queue.append(run)
        self._wake.set()

    def cancel(self, run: RunState) -> None:
        """Cancel a queued run at once, or ask the running one to stop."""
        if run.terminal:
            return
        if run in self._queue:
            self._queue.remove(run)
            run.cancel_requested_at = now_iso()
            self._finish(run, cancelled("cancelled before it started"))
        elif run is self.current:
            run.request_stop(_CANCELLED_BY_REQUEST)

    async def _work(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            run = self._queue.popleft()
            self.current = run
            try:
                await self._execute(run)
            except asyncio.CancelledError:
                if not run.terminal:
                    self._finish(run, run.stop_outcome)
                raise
            except Exception as error:  # never let one run kill the worker
                log.exception("run %s crashed the server's executor", run.id)
                if not run.terminal:
                    self._finish(
                        run, Outcome("failed", f"the server failed to execute it: {error}")
                    )
            finally:
                self.current = None

    # -- one run ---------------------------------------------------------------------

    async def _execute(self, run: RunState) -> None:
        async with self._kernel_lock:  # wait for a restart in progress, if any
            pass
        run.status, run.started_at = "running", now_iso()
        run.touch()
        before = await self._snapshot()
        run.recorder.on_display = lambda result, index: self._display_artifact(run, result, index)
        previous_env = await self._apply_envs(run)
        restarted = False
        if run.stop.is_set():
            outcome = run.stop_outcome
        else:
            if run.keep_processes:
                with contextlib.suppress(KernelDiedError):  # the run itself then reports it
                    await self.kernel.keep_next_leftovers()
            outcome, restarted = await self._run_code(run)
        if previous_env is not None and not restarted:
            await self._restore_envs(previous_env)

        await self._collect_artifacts(run, before)
        self._finish(run, outcome)
        if not run.keep_processes:  # after the answer, before the next run
            try:
                await self.kernel.stop_leftovers()
            except (OSError, KernelDiedError):  # the kernel itself is gone: nothing to stop
                log.debug("nothing to stop after run %s", run.id, exc_info=True)

    async def _run_code(self, run: RunState) -> tuple[Outcome, bool]:
        """Execute, watching the timeout and stop signal; ``(outcome, restarted)``."""
        sent = self.kernel.send_execute(run.code, hook=run.recorder.hook, started=run.executing)
        # Stored once the code is on its way (listings by status read the store).
        self._store.put_run(run.to_json())
        execution = asyncio.create_task(self.kernel.finish_execute(sent))
        stopper = asyncio.create_task(run.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {execution, stopper},
                timeout=run.timeout_secs,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if execution in done:
                return await self._outcome_of(run, execution)
            if not run.stop.is_set():
                reason = f"timed out after {run.timeout_secs} s"
                run.request_stop(Outcome("failed", reason, TIMED_OUT), interrupt=True)
            restarted = await self._stop_execution(run, execution)
            outcome = run.stop_outcome
            if restarted and run.stop_interrupts:
                outcome = outcome._replace(reason=f"{outcome.reason}{_RESTART_NOTE}")
            return outcome, restarted
        finally:
            stopper.cancel()
            if not execution.done():
                execution.cancel()
            with contextlib.suppress(BaseException):
                await execution
            self.kernel.forget(sent)

    async def _outcome_of(
        self, run: RunState, execution: asyncio.Task[dict[str, Any]]
    ) -> tuple[Outcome, bool]:
        """How a finished execution ends the run; ``(outcome, restarted)``."""
        error = execution.exception()
        if isinstance(error, KernelDiedError):
            if run.stop.is_set():  # a restart or delete replaced the kernel on purpose
                async with self._kernel_lock:
                    pass
                return run.stop_outcome, True
            await self.restart_kernel()
            if self._ran_out_of_memory():
                reason = (
                    f"out of memory: limit {self.memory_limit_mb} MB; the kernel was "
                    "killed and restarted, so the context's variables are lost"
                )
                return Outcome("failed", reason, KERNEL_DIED), True
            reason = (
                "the kernel died while running the code; it was restarted, "
                "so the context's variables are lost"
            )
            if self.memory_limit_mb is not None:
                reason += f" (it may have run out of memory: limit {self.memory_limit_mb} MB)"
            return Outcome("failed", reason, KERNEL_DIED), True
        if error is not None:
            raise error
        reply = execution.result()
        run.recorder.finish_reply(reply)
        if run.stop.is_set():
            return run.stop_outcome, False
        if reply.get("status") == "ok":
            return Outcome("succeeded"), False
        failure = run.recorder.error
        if failure is None:
            return Outcome("failed", f"the kernel answered {reply.get('status')!r}"), False
        if failure["name"] == "MemoryError" and self.memory_limit_mb is not None:
            # A half-failed allocation can leave the kernel unusable: start afresh.
            limit = f"out of memory: limit {self.memory_limit_mb} MB"
            failure["value"] = failure["value"] or limit
            await self.restart_kernel()
            reason = f"{limit}; the context was restarted, so its variables are lost"
            return Outcome("failed", reason, CODE_RAISED), True
        value = failure["value"]
        detail = f": {value}" if value else ""
        if len(detail) > 200:
            detail = detail[:199] + "…"
        return Outcome("failed", f"the code raised {failure['name']}{detail}", CODE_RAISED), False

    async def _stop_execution(self, run: RunState, execution: asyncio.Task[Any]) -> bool:
        """Interrupt, then restart if needed; True when the kernel was restarted."""
        if run.stop_interrupts:
            # A signal sent before the code starts is lost: wait for the start first.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self._grace
            starting = asyncio.ensure_future(run.executing.wait())
            await asyncio.wait(
                {execution, starting}, timeout=self._grace, return_when=asyncio.FIRST_COMPLETED
            )
            starting.cancel()
            # A SIGINT can also land in the kernel's own bookkeeping around the code
            # (and be swallowed there), so repeat it, backing off, until the grace ends;
            # but not once the kernel has reported an error (the interrupt landed), and
            # not too soon: a second SIGINT while IPython formats the first one's
            # traceback makes it print "Unexpected exception formatting exception".
            pause = 1.0
            while not execution.done():
                if run.recorder.error is None:
                    await self.kernel.interrupt()
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.wait({execution}, timeout=min(pause, remaining))
                pause = min(pause * 2, 2.0)
            if execution.done() and not isinstance(execution.exception(), KernelDiedError):
                with contextlib.suppress(Exception):
                    run.recorder.finish_reply(execution.result())
                return False
            await self.restart_kernel()  # it ignored the interrupt, or died of it
            return True
        # Someone else (a restart) is replacing the kernel: wait until it is done.
        await asyncio.wait({execution}, timeout=self._grace)
        async with self._kernel_lock:
            pass
        return True

    def _ran_out_of_memory(self) -> bool:
        """Whether the sandbox's cgroup killed a process for memory since last asked."""
        if self._oom_kills is None:
            return False
        seen, self._oom_seen = self._oom_seen, self._oom_kills()
        return self._oom_seen > seen

    async def restart_kernel(self) -> None:
        async with self._kernel_lock:
            await self.kernel.restart()
            await self._prepare(self.kernel)

    # -- envs ------------------------------------------------------------------------

    async def _apply_envs(self, run: RunState) -> dict[str, str | None] | None:
        if not run.envs or self.language != "python":
            return None
        keys, values = sorted(run.envs), dict(run.envs)
        expression = (
            f"[{{k: __import__('os').environ.get(k) for k in {keys!r}}}, "
            f"__import__('os').environ.update({values!r})][0]"
        )
        try:
            reply = await self.kernel.execute("", silent=True, user_expressions={"e": expression})
            shown = reply["user_expressions"]["e"]["data"]["text/plain"]
            previous: dict[str, str | None] = ast.literal_eval(shown)
        except (KernelDiedError, KeyError, TypeError, ValueError, SyntaxError):
            return None
        return previous

    async def _restore_envs(self, previous: Mapping[str, str | None]) -> None:
        code = (
            "(lambda e, p: [e.pop(k, None) if v is None else e.__setitem__(k, v) "
            f"for k, v in p.items()])(__import__('os').environ, {dict(previous)!r})"
        )
        with contextlib.suppress(KernelDiedError):
            await self.kernel.execute(code, silent=True)

    # -- the end of a run ------------------------------------------------------------

    async def _snapshot(self) -> artifact_files.Snapshot:
        """Walk the cwd: inline while it is small (microseconds), else in a thread."""
        if self._snapshot_size < _INLINE_SNAPSHOT_FILES:
            found = artifact_files.snapshot(self.cwd)
        else:
            found = await asyncio.to_thread(artifact_files.snapshot, self.cwd)
        self._snapshot_size = len(found)
        return found

    async def _collect_artifacts(self, run: RunState, before: artifact_files.Snapshot) -> None:
        try:
            after = await self._snapshot()
            names = artifact_files.changed_files(before, after)
            if not names:
                return
            found = await asyncio.to_thread(
                artifact_files.collect,
                cwd=self.cwd,
                names=names,
                store_dir=self._store.artifact_dir,
                sandbox_id=self.sandbox_id,
                context_id=self.id,
                execution_count=run.recorder.execution_count,
                max_bytes=self._max_artifact_bytes,
            )
        except OSError:
            log.exception("could not collect the artifacts of run %s", run.id)
            return
        for artifact in found:
            self._keep_artifact(run, artifact)

    def _display_artifact(self, run: RunState, result: dict[str, Any], index: int) -> None:
        """Keep a displayed image as an artifact of the run (see `display_artifacts`)."""
        try:
            artifact = store_display_image(
                result,
                result_index=index,
                store_dir=self._store.artifact_dir,
                sandbox_id=self.sandbox_id,
                context_id=self.id,
                execution_count=run.recorder.execution_count,
                max_bytes=self._max_artifact_bytes,
            )
        except OSError:
            log.exception("could not keep a displayed image of run %s", run.id)
            return
        if artifact is not None:
            self._keep_artifact(run, artifact)

    def _keep_artifact(self, run: RunState, artifact: dict[str, Any]) -> None:
        """Store an artifact of ``run`` (it expires with the run) and report it."""
        artifact["expires_at"] = run.expires_at
        self._store.put_artifact(artifact, run_id=run.id, sandbox_id=self.sandbox_id)
        run.recorder.add_artifact(artifact)

    def _finish(self, run: RunState, outcome: Outcome) -> None:
        run.status, run.failure_reason, run.failure_code = outcome
        run.completed_at = now_iso()
        self._store.put_run(run.to_json())
        run.done.set()
        run.recorder.close()
        self._on_finish(run)

    # -- control of the whole context ------------------------------------------------

    async def interrupt(self) -> None:
        """Stop the running run (it ends ``cancelled``), or just interrupt the kernel."""
        run = self.current
        if run is not None:
            run.request_stop(cancelled("the context was interrupted"))
        else:
            await self.kernel.interrupt()

    async def restart(self) -> None:
        """Restart the kernel; a running run ends ``cancelled``; queued runs stay."""
        run = self.current
        if run is not None:
            run.request_stop(cancelled("the context was restarted"), interrupt=False)
        await self.restart_kernel()

    async def close(self, outcome: Outcome) -> None:
        """End every queued and running run with ``outcome``; stop the worker.

        The kernel itself is shut down by the caller (the pool).
        """
        if self._closed:
            return
        self._closed = True
        while self._queue:
            self._finish(self._queue.popleft(), outcome)
        run = self.current
        if run is not None:
            run.request_stop(outcome, interrupt=False)
        self._worker.cancel()
        with contextlib.suppress(BaseException):
            await self._worker
