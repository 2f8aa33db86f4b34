"""The exceptions that make a ``%%sandbox`` cell fail like a local one."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Final

from sandbox_magic.client import (
    ExecutionError,
    RemoteExecutionError,
    Run,
    RunCancelledError,
    RunFailedError,
    SandboxError,
)
from sandbox_magic.render.bundle import DEFAULT_MAX_OUTPUT_BYTES
from sandbox_magic.render.cell_numbers import relabel_cells
from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.text import limit_note, utf8_len
from sandbox_magic.wire import CODE_RAISED, TIMED_OUT

__all__ = [
    "INPUT_HINT",
    "cell_exception",
    "describe_failure",
    "ended_by_the_service",
    "remote_error",
    "run_error",
]

_TIMEOUT: Final = re.compile(r"time[ds]?[ _-]?out|deadline|exec_timeout", re.IGNORECASE)


def _bounded_traceback(lines: list[str], max_bytes: int) -> list[str]:
    """Keep the traceback's head and tail within ``max_bytes``, with a note between."""
    total = sum(utf8_len(line) + 1 for line in lines)
    if total <= max_bytes:
        return lines
    budget = max_bytes // 2
    head: list[str] = []
    tail: list[str] = []
    used = 0
    for line in lines:
        used += utf8_len(line) + 1
        if used > budget:
            break
        head.append(line)
    used = 0
    for line in reversed(lines[len(head) :]):
        used += utf8_len(line) + 1
        if used > budget:
            break
        tail.insert(0, line)
    kept = sum(utf8_len(line) + 1 for line in head + tail)
    return [*head, limit_note("traceback", total - kept, max_bytes), *tail]


#: What ``input()`` gives in a run, whatever the server says (it cannot be answered).
INPUT_HINT: Final = (
    "interactive input (input(), getpass()) is not available in %%sandbox cells: the "
    "code runs remotely and nobody can type into it. Put the value in the code, set it "
    "with `%%sandbox --env NAME=VALUE` (--secret-env NAME for a password), or send a "
    "local variable with `%%sandbox --push NAME`."
)
_STDIN_ERROR: Final = "StdinNotImplementedError"


def _input_hint(name: str, value: str, traceback: list[str]) -> tuple[str, list[str]]:
    """For a remote ``input()``: the clear message, and the traceback's last line too."""
    if name != _STDIN_ERROR or "%%sandbox" in value:
        return value, traceback
    if traceback and name in traceback[-1]:
        traceback = [*traceback[:-1], f"{name}: {INPUT_HINT}"]
    return INPUT_HINT, traceback


def remote_error(
    error: ExecutionError,
    run_id: str | None = None,
    *,
    redactor: Redactor = NO_REDACTION,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    cell_numbers: Mapping[int, int] | None = None,
) -> RemoteExecutionError:
    """The exception to raise for code that raised remotely (traceback colours kept).

    ``cell_numbers`` maps remote cell numbers to local ones (`relabel_cells`).
    """
    traceback = [redactor.text(str(line)) for line in error.traceback]
    traceback = relabel_cells(traceback, cell_numbers or {})
    value, traceback = _input_hint(error.name, redactor.text(error.value), traceback)
    return RemoteExecutionError.named(
        redactor.text(error.name),
        value,
        _bounded_traceback(traceback, max_bytes),
        run_id=run_id,
    )


def _timed_out(run: Run) -> bool:
    """True when the run hit its time limit: by its code, else by its words."""
    if run.failure_code is not None:
        return run.failure_code == TIMED_OUT
    return bool(_TIMEOUT.search(run.failure_reason or ""))


def describe_failure(run: Run) -> str:
    """Why the run failed, in words: a timeout says "timed out after N s"."""
    reason = run.failure_reason or ""
    if run.status == "failed" and _timed_out(run) and "timed out after" not in reason:
        limit = f"{run.timeout_secs} s" if run.timeout_secs is not None else "its time limit"
        return f"timed out after {limit} ({reason})" if reason else f"timed out after {limit}"
    if run.status == "cancelled" and not reason:
        return "cancelled before it finished"
    return reason or "no reason given by the server"


def run_error(run: Run, *, redactor: Redactor = NO_REDACTION) -> RunFailedError:
    """`RunCancelledError` or `RunFailedError` naming the run id, status and reason.

    The error's ``run`` attribute is the record as received.
    """
    shown = dataclasses.replace(run, failure_reason=redactor.text(describe_failure(run)))
    error = RunCancelledError(shown) if run.status == "cancelled" else RunFailedError(shown)
    error.run = run
    return error


_INTERRUPT_NAMES = frozenset({"KeyboardInterrupt"})


def ended_by_the_service(run: Run) -> bool:
    """True when the run was stopped (cancel, timeout, dead kernel), not just raised.

    Such a run often also carries ``execution.error`` (the ``KeyboardInterrupt`` the
    interrupt caused), which is a symptom: the run's status and reason are the news.
    A failed run whose error is a real exception of the code (the local server, and
    possibly the service, end those ``failed`` with a reason such as "the code raised
    ZeroDivisionError") was not stopped: its traceback is the news. The run's
    ``failure_code`` decides when the server sent one; its words otherwise.
    """
    if run.status == "cancelled":
        return True
    if run.status != "failed":
        return False
    if run.failure_code is not None:
        return run.failure_code != CODE_RAISED
    if not run.failure_reason:
        return False
    error = run.execution.error
    return error is None or error.name in _INTERRUPT_NAMES


def cell_exception(
    run: Run,
    *,
    redactor: Redactor = NO_REDACTION,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    cell_numbers: Mapping[int, int] | None = None,
) -> SandboxError | None:
    """The exception that should fail the cell for a finished run; None if it went well.

    Cancelled, or failed with a reason (timeout, dead kernel): `run_error`. Otherwise
    an exception raised by the code: `remote_error`. Failed without either:
    `run_error`.
    """
    if ended_by_the_service(run):
        return run_error(run, redactor=redactor)
    if run.execution.error is not None:
        return remote_error(
            run.execution.error,
            run.id,
            redactor=redactor,
            max_bytes=max_bytes,
            cell_numbers=cell_numbers,
        )
    if run.status == "failed":
        return run_error(run, redactor=redactor)
    return None
