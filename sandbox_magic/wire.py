"""Constants of the wire contract, shared by the client and the local server.

Only plain values live here, so the server can use them without importing the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "AUTH_FAILED",
    "CANCELLED",
    "CAPACITY_EXCEEDED",
    "CODE_RAISED",
    "FEATURES_HEADER",
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
    "WATCH_MEDIA_TYPE",
    "ServerFeatures",
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

#: What a server offers beyond the contract (ours), advertised on every ``/v1`` answer:
#: see `ServerFeatures`.
FEATURES_HEADER: Final = "X-Sandbox-Features"
#: The media type of a run watch answer: one JSON object per line.
WATCH_MEDIA_TYPE: Final = "application/x-ndjson"

_RUN_WATCH: Final = "run-watch"
_FILES: Final = "files"
_LIMIT: Final = 10**12


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """The optional features of one server; the default is none (the plain contract).

    What a server offers beyond the 0.x contract, as it advertises it in a response header.

    The local server sends ``X-Sandbox-Features`` on every ``/v1`` answer, e.g.::

        X-Sandbox-Features: run-watch; max_wait_ms=25000, files; max_bytes=1073741824

    - ``run-watch``: ``GET .../code/runs/{id}?watch_ms=N[&after_version=V]`` holds one
      response open for up to N ms and writes each new snapshot of the run as one NDJSON
      line ``{"version": int, "run": {...}}`` as soon as it happens; the response ends with
      the run's terminal snapshot or when the wait passes.
    - ``files``: ``PUT``/``GET .../file?path=`` move raw bytes into and out of the sandbox
      (the hosted API's file endpoints), up to ``max_bytes``.

    A server that sends no such header (the hosted service) offers neither, and clients
    keep to the plain contract: adaptive polling and code-chunk transfers.
    """

    #: Longest ``watch_ms`` the server honours; None when it cannot watch runs.
    watch_max_ms: int | None = None
    #: Largest file the file endpoints accept; None when it has no file endpoints.
    files_max_bytes: int | None = None

    @property
    def can_watch(self) -> bool:
        return self.watch_max_ms is not None and self.watch_max_ms > 0

    @property
    def has_files(self) -> bool:
        return self.files_max_bytes is not None and self.files_max_bytes > 0

    def header_value(self) -> str:
        """The header's value (empty when there is nothing to advertise)."""
        parts = []
        if self.watch_max_ms is not None:
            parts.append(f"{_RUN_WATCH}; max_wait_ms={self.watch_max_ms}")
        if self.files_max_bytes is not None:
            parts.append(f"{_FILES}; max_bytes={self.files_max_bytes}")
        return ", ".join(parts)

    @classmethod
    def parse(cls, value: str | None) -> ServerFeatures:
        """Read a header value; anything unknown or malformed is ignored."""
        watch: int | None = None
        files: int | None = None
        for item in (value or "")[:2000].split(","):
            name, *params = (part.strip() for part in item.split(";"))
            numbers = dict(_number(param) for param in params)
            if name == _RUN_WATCH:
                watch = numbers.get("max_wait_ms")
            elif name == _FILES:
                files = numbers.get("max_bytes")
        return cls(watch_max_ms=watch, files_max_bytes=files)


def _number(param: str) -> tuple[str, int | None]:
    key, _, raw = param.partition("=")
    raw = raw.strip()
    if not raw.isdigit() or len(raw) > 13:
        return key.strip(), None
    return key.strip(), min(int(raw), _LIMIT)
