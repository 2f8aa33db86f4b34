"""Durable state: SQLite (records as JSON) plus artifact files, under the state dir.

Layout of ``--state-dir``::

    server.db             sandboxes, runs, artifacts, idempotency keys
    artifacts/<id>        the bytes of each artifact, copied when its run ended
    sandboxes/<id>/       each sandbox's own directory (contexts run in workspace/)
    token                 the bearer token, mode 0600 (see `auth`)

Writes are small and synchronous on the event loop thread (WAL mode, no fsync per
commit), which costs well under a millisecond each. Runs that were queued or running
when the previous server process ended are marked ``failed`` at startup.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sandbox_magic.wire import SERVER_STOPPED

__all__ = ["INTERRUPTED_REASON", "Page", "Store"]

INTERRUPTED_REASON: Final = "the server stopped before the run finished"

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS sandboxes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    deleted INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sandbox_id TEXT NOT NULL,
    context_id TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_sandbox ON runs (sandbox_id, seq);
CREATE TABLE IF NOT EXISTS artifacts (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    sandbox_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    context_id TEXT NOT NULL,
    execution_count INTEGER,
    kind TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS artifacts_by_sandbox ON artifacts (sandbox_id, seq);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    object_id TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


@dataclass(frozen=True, slots=True)
class Page:
    """Records of one listing page, newest first, and the cursor of the next page."""

    items: list[dict[str, Any]]
    next_cursor: str | None


class Store:
    """The SQLite database and artifact directory of one state dir."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.artifact_dir = state_dir / "artifacts"
        self.sandbox_root = state_dir / "sandboxes"
        for directory in (state_dir, self.artifact_dir, self.sandbox_root):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(
            state_dir / "server.db", isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- startup ---------------------------------------------------------------------

    def recover(self, *, completed_at: str) -> int:
        """Mark runs left queued or running by a previous process as failed."""
        rows = self._db.execute(
            "SELECT id, body FROM runs WHERE status IN ('queued', 'running')"
        ).fetchall()
        for _run_id, body in rows:
            run = json.loads(body)
            run.update(
                status="failed", failure_reason=INTERRUPTED_REASON, failure_code=SERVER_STOPPED
            )
            run["completed_at"] = run.get("completed_at") or completed_at
            self.put_run(run)
        return len(rows)

    def prune(self, *, now_iso: str) -> None:
        """Forget runs whose ``expires_at`` has passed, with their artifacts."""
        expired = [
            row[0]
            for row in self._db.execute("SELECT id FROM runs WHERE expires_at < ?", (now_iso,))
        ]
        for run_id in expired:
            for (artifact_id,) in self._db.execute(
                "SELECT id FROM artifacts WHERE run_id = ?", (run_id,)
            ).fetchall():
                self.delete_artifact(artifact_id)
            self._db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    # -- sandboxes -------------------------------------------------------------------

    def put_sandbox(self, sandbox: dict[str, Any], *, deleted: bool = False) -> None:
        self._db.execute(
            "INSERT INTO sandboxes (id, deleted, body) VALUES (?, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET deleted = excluded.deleted, body = excluded.body",
            (sandbox["id"], int(deleted), json.dumps(sandbox)),
        )

    def live_sandboxes(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT body FROM sandboxes WHERE deleted = 0 ORDER BY seq")
        return [json.loads(body) for (body,) in rows]

    def ended_sandbox(self, sandbox_id: str) -> dict[str, Any] | None:
        """The last record of a deleted or expired sandbox (None if it is live or unknown)."""
        row = self._db.execute(
            "SELECT body FROM sandboxes WHERE id = ? AND deleted = 1", (sandbox_id,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def sandbox_was_deleted(self, sandbox_id: str) -> bool:
        row = self._db.execute(
            "SELECT deleted FROM sandboxes WHERE id = ?", (sandbox_id,)
        ).fetchone()
        return bool(row and row[0])

    # -- runs ------------------------------------------------------------------------

    def put_run(self, run: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO runs (id, sandbox_id, context_id, status, expires_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
            "status = excluded.status, body = excluded.body",
            (
                run["id"],
                run["sandbox_id"],
                run["context_id"],
                run["status"],
                run["expires_at"],
                json.dumps(run),
            ),
        )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT body FROM runs WHERE id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def list_runs(
        self,
        sandbox_id: str,
        *,
        status: str | None,
        context_id: str | None,
        limit: int,
        cursor: int | None,
    ) -> Page:
        """Stored runs of a sandbox, newest first."""
        where, args = self._filters(
            sandbox_id, cursor, (("status", status), ("context_id", context_id))
        )
        rows = self._db.execute(
            f"SELECT seq, body FROM runs WHERE {where} ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        items = [json.loads(body) for _seq, body in rows[:limit]]
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return Page(items, next_cursor)

    @staticmethod
    def _filters(
        sandbox_id: str, cursor: int | None, pairs: Iterable[tuple[str, Any]]
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = ["sandbox_id = ?"]
        args: list[Any] = [sandbox_id]
        for column, value in pairs:
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if cursor is not None:
            clauses.append("seq < ?")
            args.append(cursor)
        return " AND ".join(clauses), args

    # -- artifacts -------------------------------------------------------------------

    def artifact_path(self, artifact_id: str) -> Path:
        return self.artifact_dir / artifact_id

    def put_artifact(self, artifact: dict[str, Any], *, run_id: str, sandbox_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO artifacts "
            "(id, sandbox_id, run_id, context_id, execution_count, kind, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                artifact["id"],
                sandbox_id,
                run_id,
                artifact["context_id"],
                artifact.get("execution_count"),
                artifact["kind"],
                json.dumps(artifact),
            ),
        )

    def get_artifact(self, artifact_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(sandbox_id, artifact)`` or None."""
        row = self._db.execute(
            "SELECT sandbox_id, body FROM artifacts WHERE id = ?", (artifact_id,)
        ).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def list_artifacts(
        self,
        sandbox_id: str,
        *,
        context_id: str | None,
        execution_count: int | None,
        kind: str | None,
        limit: int,
        cursor: int | None,
    ) -> Page:
        where, args = self._filters(
            sandbox_id,
            cursor,
            (("context_id", context_id), ("execution_count", execution_count), ("kind", kind)),
        )
        rows = self._db.execute(
            f"SELECT seq, body FROM artifacts WHERE {where} ORDER BY seq DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        items = [json.loads(body) for _seq, body in rows[:limit]]
        next_cursor = str(rows[limit - 1][0]) if len(rows) > limit else None
        return Page(items, next_cursor)

    def artifact_bytes(self, sandbox_ids: list[str]) -> int:
        """Bytes of the artifacts kept for these sandboxes."""
        if not sandbox_ids:
            return 0
        marks = ", ".join("?" * len(sandbox_ids))
        row = self._db.execute(
            "SELECT COALESCE(SUM(json_extract(body, '$.size_bytes')), 0) FROM artifacts "
            f"WHERE sandbox_id IN ({marks})",
            sandbox_ids,
        ).fetchone()
        return int(row[0])

    def delete_artifact(self, artifact_id: str) -> None:
        self._db.execute("DELETE FROM artifacts WHERE id = ?", (artifact_id,))
        self.artifact_path(artifact_id).unlink(missing_ok=True)

    # -- idempotency -----------------------------------------------------------------

    def idempotent_object(self, scope: str, key: str) -> tuple[str, str] | None:
        """``(fingerprint, object id)`` recorded for a key, or None."""
        row = self._db.execute(
            "SELECT fingerprint, object_id FROM idempotency WHERE scope = ? AND key = ?",
            (scope, key),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def remember_idempotent(self, scope: str, key: str, fingerprint: str, object_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO idempotency (scope, key, fingerprint, object_id) "
            "VALUES (?, ?, ?, ?)",
            (scope, key, fingerprint, object_id),
        )
