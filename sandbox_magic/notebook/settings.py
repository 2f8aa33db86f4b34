"""The magics' configuration as one immutable snapshot, taken for each cell.

`SandboxMagics` owns the traits (``%config SandboxMagics.<name>``); everything below
it reads this snapshot instead, so no other module reaches into the magics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sandbox_magic.client import PollPolicy
from sandbox_magic.render.bundle import DEFAULT_MAX_OUTPUT_BYTES
from sandbox_magic.render.redact import Redactor
from sandbox_magic.session.sandbox_session import ConnectionSettings

__all__ = ["NotebookSettings"]


@dataclass(frozen=True)
class NotebookSettings:
    """What one cell runs with; the API key stays inside ``connection``, out of reprs."""

    connection: ConnectionSettings = field(default_factory=lambda: ConnectionSettings(None))
    default_timeout: int = 300
    poll: PollPolicy = field(default_factory=PollPolicy)
    show_status: bool = True
    status_delay: float = 0.5
    status_view: str = "auto"
    summary: str = "full"
    allow_javascript: bool = False
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_transfer_bytes: int = 200 * 1024 * 1024
    max_download_bytes: int = 1 << 30
    keep_sandbox: bool = True
    journal_path: str | None = None

    def redactor(self, secret_values: tuple[str, ...] | list[str] = ()) -> Redactor:
        """Hides the API key and the given secret values in any output."""
        key = self.connection.api_key
        return Redactor([*([key] if key else []), *secret_values])
