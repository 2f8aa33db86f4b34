"""Fold the events of a streamed execution into `Run` snapshots.

On a server without async runs, code runs through ``POST .../code/execute``, which
streams events instead of keeping a run to poll. `StreamFold` turns those events into
the same `Run` records polling gives, so one output bridge renders both: each
``stdout``/``stderr``/``result`` event appends to the execution and to its
``output_order`` (so prints and displays interleave as they arrived), ``artifact`` and
``number_of_executions`` fill in the rest, and ``error`` sets the execution's error.

An ``error`` event without a traceback named ``TimeoutError``, ``RunFailed`` or
``RunCancelled`` is the server ending the execution (timeout, dead kernel, cancel), not
the code raising: the snapshot then ends ``failed``/``cancelled`` with that reason, as
a polled run would. A streamed run has no id on the server: its id is made up here
(``streamed-…``), and ``extra["streamed"]`` is True, so it is never offered for
re-attaching.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Final

from sandbox_magic.client._errors import SandboxProtocolError
from sandbox_magic.client._models import (
    Artifact,
    Execution,
    ExecutionError,
    Logs,
    OutputRef,
    Result,
    Run,
)

__all__ = ["STREAMED_PREFIX", "StreamFold", "is_streamed"]

STREAMED_PREFIX: Final = "streamed-"
#: Error names a server uses for executions it ended itself.
_ENDED_BY_SERVER: Final = frozenset({"TimeoutError", "RunFailed", "RunCancelled"})


def is_streamed(run: Run) -> bool:
    """True for a run that was streamed (it has no server-side record)."""
    return run.extra.get("streamed") is True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class StreamFold:
    """The execution so far, built from stream events; `snapshot` gives a `Run`."""

    def __init__(
        self, *, sandbox_id: str, context_id: str | None, timeout_secs: int | None
    ) -> None:
        self.id = STREAMED_PREFIX + uuid.uuid4().hex[:12]
        self.sandbox_id = sandbox_id
        self.context_id = context_id
        self.timeout_secs = timeout_secs
        self.created_at = _now()
        self.completed_at: str | None = None
        self.status = "running"
        self.failure_reason: str | None = None
        self.interrupted = False
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._results: list[Result] = []
        self._artifacts: list[Artifact] = []
        self._order: list[OutputRef] = []
        self._error: ExecutionError | None = None
        self._ended_by: ExecutionError | None = None
        self._count: int | None = None

    def add(self, event: dict[str, Any]) -> bool:
        """Take one event; True when the snapshot changed (unknown events change nothing)."""
        kind = event.get("type")
        if kind in ("stdout", "stderr"):
            text = event.get("text", event.get("line"))
            if not isinstance(text, str):
                return False
            chunks = self._stdout if kind == "stdout" else self._stderr
            self._order.append(OutputRef(str(kind), len(chunks)))
            chunks.append(text)
        elif kind == "result":
            body = {k: v for k, v in event.items() if k != "type"}
            self._order.append(OutputRef("result", len(self._results)))
            self._results.append(Result.from_json(body, "event.result"))
        elif kind == "error":
            error = ExecutionError.from_json(
                {k: v for k, v in event.items() if k != "type"}, "event.error"
            )
            if error is None:
                return False
            if error.name in _ENDED_BY_SERVER and not error.traceback:
                self._ended_by = error
            else:
                self._error = error
        elif kind == "artifact":
            payload = event.get("artifact", event)
            if not isinstance(payload, dict) or not payload.get("id"):
                return False
            try:
                self._artifacts.append(Artifact.from_json(payload, "event.artifact"))
            except SandboxProtocolError:
                return False
        elif kind == "number_of_executions":
            count = event.get("execution_count")
            if not isinstance(count, int) or isinstance(count, bool):
                return False
            self._count = count
        else:
            return False
        return True

    def finish(self, *, status: str | None = None, reason: str | None = None) -> None:
        """The stream ended (or was given up on): settle status and reason, once."""
        if self.completed_at is not None:
            return
        self.completed_at = _now()
        if status is not None:
            self.status, self.failure_reason = status, reason
        elif self.interrupted:
            self.status = "cancelled"
            self.failure_reason = "interrupted from the notebook"
        elif self._ended_by is not None:
            name, value = self._ended_by.name, self._ended_by.value
            self.status = "cancelled" if name == "RunCancelled" else "failed"
            self.failure_reason = value or name
        elif self._error is not None:
            self.status = "failed"
            self.failure_reason = f"the code raised {self._error.name}"
        else:
            self.status = "succeeded"

    def snapshot(self) -> Run:
        """The run as it stands: running until `finish`, then terminal."""
        execution = Execution(
            results=tuple(self._results),
            artifacts=tuple(self._artifacts),
            logs=Logs(stdout=tuple(self._stdout), stderr=tuple(self._stderr)),
            error=self._error,
            execution_count=self._count,
            output_order=tuple(self._order),
        )
        return Run(
            id=self.id,
            status=self.status,
            sandbox_id=self.sandbox_id,
            context_id=self.context_id,
            timeout_secs=self.timeout_secs,
            created_at=self.created_at,
            started_at=self.created_at,
            completed_at=self.completed_at,
            execution=execution,
            failure_reason=self.failure_reason,
            extra={"streamed": True},
        )
