"""Constants of the wire contract, shared by the client and the local server.

Only plain values live here, so the server can use them without importing the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = [
    "AUTH_FAILED",
    "CANCELLED",
    "CAPACITY_EXCEEDED",
    "CODE_RAISED",
    "INTERNAL_ERROR",
    "INVALID_REQUEST",
    "KERNEL_DIED",
    "MIME_BY_FIELD",
    "NOT_FOUND",
    "REASON_CODES",
    "RUN_STATUSES",
    "SERVER_STOPPED",
    "TERMINAL_STATUSES",
    "TIMED_OUT",
]

#: The statuses a run ends in; it never changes again after one of them.
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})

#: Every status a run can have.
RUN_STATUSES: Final = frozenset({"queued", "running"}) | TERMINAL_STATUSES

#: The Result fields that stand for one MIME type each, and that type.
MIME_BY_FIELD: Final[Mapping[str, str]] = {
    "text": "text/plain",
    "html": "text/html",
    "markdown": "text/markdown",
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "pdf": "application/pdf",
    "latex": "text/latex",
    "json": "application/json",
    "javascript": "application/javascript",
}

# Why a run ended other than ``succeeded``: the run's ``failure_code``, next to the
# ``failure_reason`` words. A server may send none; clients then read the words.

#: The run took longer than its timeout and was stopped.
TIMED_OUT: Final = "timed_out"
#: Someone cancelled it: a cancel request, an interrupt, a restart or a deletion.
CANCELLED: Final = "cancelled"
#: The kernel died while running it.
KERNEL_DIED: Final = "kernel_died"
#: The server stopped before the run finished.
SERVER_STOPPED: Final = "server_stopped"
#: The code raised an exception.
CODE_RAISED: Final = "code_raised"

REASON_CODES: Final = frozenset({TIMED_OUT, CANCELLED, KERNEL_DIED, SERVER_STOPPED, CODE_RAISED})

# The ``code`` of an error answer (``{"error": {"code": ...}}``) that the local server
# gives; the hosted service has more (see the contract).

INVALID_REQUEST: Final = "invalid_request"
AUTH_FAILED: Final = "auth_failed"
NOT_FOUND: Final = "not_found"
CAPACITY_EXCEEDED: Final = "capacity_exceeded"
INTERNAL_ERROR: Final = "internal_error"
