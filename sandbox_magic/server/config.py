"""The server's settings, one immutable record built by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_FILE_BYTES", "ServerConfig"]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the app needs; defaults suit a laptop."""

    state_dir: Path
    token: str
    host: str = "127.0.0.1"
    port: int = 8765
    #: Kernels kept started and idle so a new context needs no cold start.
    warm_kernels: int = 1
    #: Seconds a run may take when the request gives no ``timeout``.
    default_run_timeout: int = 300
    #: Seconds a kernel gets to stop after an interrupt before it is restarted.
    interrupt_grace: float = 3.0
    #: Largest accepted request body.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: Files larger than this are not kept as artifacts.
    max_artifact_bytes: int = 256 * 1024 * 1024
    #: Days finished runs and their artifacts are kept.
    retention_days: int = 30
    #: Offer ``GET .../runs/{id}?watch_ms=`` and ``?wait_ms=`` (ours; the hosted API has
    #: neither). Off, the server answers run reads at once, like the hosted service.
    long_poll: bool = True
    #: Offer ``PUT``/``GET .../file?path=`` (the hosted 1.x API's raw file endpoints).
    file_endpoints: bool = True
    #: Largest file ``PUT .../file`` accepts.
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
