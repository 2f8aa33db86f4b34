"""The server's settings, one immutable record built by the CLI or by tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sandbox_magic.server.classroom.quotas import Quotas

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ServerConfig"]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024


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
    #: Quotas of student keys (each key may override them); admins are unlimited.
    student_quotas: Quotas = field(default_factory=Quotas)
    #: Lower the CPU priority of runs that keep a core busy (see `classroom.fairness`).
    cpu_demotion: bool = True
