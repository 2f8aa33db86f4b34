"""What a server offers beyond the 0.x contract, as it advertises it in a response header.

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

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["FEATURES_HEADER", "WATCH_MEDIA_TYPE", "ServerFeatures"]

FEATURES_HEADER: Final = "X-Sandbox-Features"
WATCH_MEDIA_TYPE: Final = "application/x-ndjson"

_RUN_WATCH: Final = "run-watch"
_FILES: Final = "files"
_LIMIT: Final = 10**12


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """The optional features of one server; the default is none (the plain contract)."""

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
