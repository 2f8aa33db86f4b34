"""A local journal of recent runs, so they can be listed and re-attached after a restart.

One JSON object per line: run id, sandbox id, context name, server URL (never the
key), the first line of the code and when it was submitted. Only ids and
non-secret facts are written; the file is created readable by its owner only.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Journal", "JournalEntry", "default_journal_path"]

#: Bytes appended, per entry kept, between two looks at the journal's length: an
#: entry is over 100 bytes, so fewer than ``max_entries / 2`` lines come in between.
_RECHECK_BYTES_PER_ENTRY = 64


def default_journal_path() -> Path:
    """The journal's default place, in Jupyter's data directory."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "sandbox_magic" / "runs.jsonl"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """What is remembered of one submitted run."""

    run_id: str
    sandbox_id: str
    context: str
    url: str
    code_head: str
    submitted_at: str
    embedded_state_dir: str | None = None

    @classmethod
    def from_json(cls, obj: Any) -> JournalEntry | None:
        """Parse one line's object; None when it is not a journal entry."""
        if not isinstance(obj, dict):
            return None
        try:
            return cls(
                run_id=str(obj["run_id"]),
                sandbox_id=str(obj["sandbox_id"]),
                context=str(obj.get("context", "")),
                url=str(obj.get("url", "")),
                code_head=str(obj.get("code_head", "")),
                submitted_at=str(obj.get("submitted_at", "")),
                embedded_state_dir=obj.get("embedded_state_dir") or None,
            )
        except KeyError:
            return None


class Journal:
    """Append-only list of recent runs, trimmed to ``max_entries``."""

    def __init__(self, path: Path | None = None, max_entries: int = 500) -> None:
        self.path = path if path is not None else default_journal_path()
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._check_at = 0  # file size at which to count lines (and trim) again

    def record(self, entry: JournalEntry) -> None:
        """Append an entry; never fails the cell if the disk refuses."""
        # One write of the whole line: appends from other processes never interleave.
        line = (json.dumps(asdict(entry)) + "\n").encode("utf-8")
        with self._lock, contextlib.suppress(OSError):
            fd = self._open_for_append()
            try:
                os.write(fd, line)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            # Reading the whole file on every cell would cost more as it grows: look
            # again only after some more bytes (other processes append too).
            if size >= self._check_at:
                self._check_at = self._trim() + _RECHECK_BYTES_PER_ENTRY * self.max_entries

    def _open_for_append(self) -> int:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        try:
            return os.open(self.path, flags, 0o600)
        except FileNotFoundError:  # the first entry: make the folder
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, flags, 0o600)

    def _trim(self) -> int:
        """Keep the newest ``max_entries`` once there are twice as many; the size left."""
        text = self.path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if len(lines) <= 2 * self.max_entries:
            return len(text.encode("utf-8"))
        kept = "\n".join(lines[-self.max_entries :]) + "\n"
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(kept, encoding="utf-8")
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)
        return len(kept.encode("utf-8"))

    def entries(self) -> list[JournalEntry]:
        """All readable entries, oldest first; unreadable lines are skipped."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError:
            return []
        found: list[JournalEntry] = []
        for line in text.splitlines():
            with contextlib.suppress(ValueError):
                if (entry := JournalEntry.from_json(json.loads(line))) is not None:
                    found.append(entry)
        return found[-self.max_entries :]

    def find(self, run_id: str) -> JournalEntry | None:
        """The newest entry for a run id."""
        return next((e for e in reversed(self.entries()) if e.run_id == run_id), None)
