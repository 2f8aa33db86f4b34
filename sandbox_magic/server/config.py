"""The server's settings, one immutable record built by the CLI or by tests."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from sandbox_magic.server.classroom.quotas import Quotas
from sandbox_magic.server.confinement import Confinement, LimitPolicy

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_FILE_BYTES", "ISOLATION_ENV", "ServerConfig"]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_FILE_BYTES = 1024 * 1024 * 1024
#: The environment variable that sets the default isolation (CLI and in-process).
ISOLATION_ENV = "SANDBOX_MAGIC_ISOLATION"


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
    #: API generations served: ``both``, ``sandboxes`` (0.x only) or ``machines`` (1.x only).
    api: str = "both"
    #: False answers ``POST .../code/runs`` as a hosted deployment without async runs does.
    async_runs: bool = True
    #: Offer ``GET .../runs/{id}?watch_ms=`` and ``?wait_ms=`` (ours; the hosted API has
    #: neither). Off, the server answers run reads at once, like the hosted service.
    long_poll: bool = True
    #: Offer ``PUT``/``GET .../file?path=`` (the hosted 1.x API's raw file endpoints).
    file_endpoints: bool = True
    #: Largest file ``PUT .../file`` accepts.
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    #: ``auto`` (bubblewrap when this machine allows it), ``bwrap`` or ``none``;
    #: by default ``$SANDBOX_MAGIC_ISOLATION``, else ``auto``.
    isolation: str = field(default_factory=lambda: os.environ.get(ISOLATION_ENV) or "auto")
    #: The isolation already detected (by ``serve``); None: detect at start.
    confinement: Confinement | None = None
    #: Defaults and maxima of the per-sandbox limits.
    limits: LimitPolicy = field(default_factory=LimitPolicy)
    #: Names of the server's environment variables confined kernels may see.
    pass_env: tuple[str, ...] = ()
    #: Whether a confined sandbox created with ``internet_access: true`` gets it.
    internet: bool = True
    #: A sandbox's lifetime when its create request gives no ``timeout_ms`` (0: none).
    default_sandbox_timeout_ms: int = 0
    #: Idle time after which a sandbox is stopped, when it gives no
    #: ``inactivity_timeout_ms`` (0: never). Activity means runs, not reads.
    default_inactivity_timeout_ms: int = 0
    #: Most live contexts (kernels) at once; more get ``503 capacity_exceeded``.
    max_contexts: int = 32
    #: Kernels started at the same time; further starts wait their turn.
    concurrent_starts: int = 2
    #: Quotas of student keys (each key may override them); admins are unlimited.
    student_quotas: Quotas = field(default_factory=Quotas)
    #: Lower the CPU priority of runs that keep a core busy (see `classroom.fairness`).
    cpu_demotion: bool = True
