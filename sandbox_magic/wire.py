"""Constants of the wire contract, shared by the client and the local server.

Only plain values live here, so the server can use them without importing the client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

__all__ = ["MIME_BY_FIELD", "RUN_STATUSES", "TERMINAL_STATUSES"]

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
