"""Keys of a class: created once, shown once, stored only as a SHA-256 hash.

A key reads ``smk_<12 hex>_<secret>``: the first part (the *prefix*) finds the row,
the hash of the whole key is then compared in constant time. ``<state-dir>/keys.db``
is shared by the running server and the ``sandbox-magic keys`` command (SQLite WAL),
so keys added or revoked there take effect on the server's next request: verified keys
are remembered (by hash) only until the database changes, which SQLite's
``data_version`` tells for other processes' writes and every write here clears.

A key's *name* is who it belongs to (a student): sandboxes are owned by the name, so
a rotated key, or a new key given to the same name, keeps the student's work.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sandbox_magic.server.util import now_iso

__all__ = ["ADMIN_NAME", "KEYS_FILE", "KeyRecord", "KeyStore", "NewKey", "valid_name"]

KEYS_FILE: Final = "keys.db"
#: The owner name of whatever the server's own token creates.
ADMIN_NAME: Final = "admin"
_PREFIX: Final = "smk_"
_KEY = re.compile(r"^(smk_[0-9a-f]{12})_[A-Za-z0-9_-]{20,}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS keys (
    id TEXT PRIMARY KEY,
    prefix TEXT NOT NULL UNIQUE,
    hash TEXT NOT NULL,
    name TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    quotas TEXT NOT NULL DEFAULT '{}',
    scope TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at TEXT,
    rotation_parent_key_id TEXT
);
CREATE INDEX IF NOT EXISTS keys_by_name ON keys (name);
CREATE TABLE IF NOT EXISTS owners (
    sandbox_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
"""


def valid_name(name: str) -> bool:
    """Names are short words: letters, digits, ``.``, ``_``, ``-``; not ``admin``."""
    return bool(_NAME.match(name)) and name.lower() != ADMIN_NAME


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's metadata (never its secret nor its hash)."""

    id: str
    prefix: str
    name: str
    admin: bool
    quotas: dict[str, int | None] = field(default_factory=dict)
    scope: str | None = None
    created_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    rotation_parent_key_id: str | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        """The hosted service's ``ApiKeyInfo`` shape, plus ours: ``admin``, ``quotas``."""
        return {
            "id": self.id,
            "prefix": self.prefix,
            "is_active": self.is_active,
            "name": self.name,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "scope": self.scope,
            "expires_at": None,
            "revoked_at": self.revoked_at,
            "rotation_parent_key_id": self.rotation_parent_key_id,
            "admin": self.admin,
            "quotas": dict(self.quotas),
        }


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just made: its record and, this once, the key itself."""

    record: KeyRecord
    key: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        """The hosted ``CreateApiKeyResponse`` shape (plus ours)."""
        info = self.record.to_json()
        return {"key": self.key, **info}


class KeyStore:
    """The keys table of one state dir."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = state_dir / KEYS_FILE
        self._db = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=10.0
        )
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._verified: dict[str, KeyRecord] = {}
        self._version = self._data_version()

    def _data_version(self) -> int:
        return int(self._db.execute("PRAGMA data_version").fetchone()[0])

    def _changed(self) -> None:
        self._verified.clear()

    def close(self) -> None:
        self._db.close()

    # -- making and ending keys ------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        admin: bool = False,
        quotas: dict[str, int | None] | None = None,
        scope: str | None = None,
        rotation_parent: str | None = None,
    ) -> NewKey:
        """A new key for ``name``; ValueError for a bad name or one with an active key."""
        if not valid_name(name):
            raise ValueError(
                f"{name!r} is not a usable key name: use letters, digits, '.', '_' or '-' "
                f"(up to 64), and not {ADMIN_NAME!r}."
            )
        prefix = _PREFIX + secrets.token_hex(6)
        key = f"{prefix}_{secrets.token_urlsafe(24)}"
        record = KeyRecord(
            id=str(uuid.uuid4()),
            prefix=prefix,
            name=name,
            admin=admin,
            quotas=dict(quotas or {}),
            scope=scope,
            created_at=now_iso(),
            rotation_parent_key_id=rotation_parent,
        )
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if rotation_parent is None and self._active_id(name) is not None:
                raise ValueError(f"{name!r} already has an active key; revoke it first.")
            self._db.execute(
                "INSERT INTO keys (id, prefix, hash, name, admin, quotas, scope, created_at, "
                "rotation_parent_key_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    prefix,
                    _hash(key),
                    name,
                    int(admin),
                    json.dumps(record.quotas),
                    scope,
                    record.created_at,
                    rotation_parent,
                ),
            )
        self._changed()
        return NewKey(record, key)

    def revoke(self, key_id: str) -> KeyRecord | None:
        """Revoke a key by id (it stops working at once); None if there is none."""
        self._db.execute(
            "UPDATE keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (now_iso(), key_id),
        )
        self._changed()
        return self.get(key_id)

    def revoke_name(self, name: str) -> KeyRecord | None:
        """Revoke the active key of ``name``; None if it has none."""
        key_id = self._active_id(name)
        return self.revoke(key_id) if key_id is not None else None

    def rotate(self, key_id: str) -> NewKey | None:
        """A new key with the same name, role and quotas; the old one is revoked."""
        old = self.get(key_id)
        if old is None or not old.is_active:
            return None
        self.revoke(key_id)
        return self.add(
            old.name,
            admin=old.admin,
            quotas=old.quotas,
            scope=old.scope,
            rotation_parent=old.id,
        )

    def set_quotas(self, name: str, quotas: dict[str, int | None]) -> KeyRecord | None:
        """Merge quota overrides into the active key of ``name``."""
        key_id = self._active_id(name)
        current = self.get(key_id) if key_id is not None else None
        if current is None:
            return None
        merged = {**current.quotas, **quotas}
        self._db.execute("UPDATE keys SET quotas = ? WHERE id = ?", (json.dumps(merged), key_id))
        self._changed()
        return self.get(current.id)

    # -- reading ---------------------------------------------------------------------

    def verify(self, key: str) -> KeyRecord | None:
        """The active key this string is, comparing hashes in constant time."""
        match = _KEY.match(key)
        if match is None:
            return None
        version = self._data_version()
        if version != self._version:  # another process (the CLI) wrote
            self._version = version
            self._changed()
        digest = _hash(key)
        known = self._verified.get(digest)
        if known is not None:
            return known
        row = self._db.execute(
            f"SELECT hash, {_COLUMNS} FROM keys WHERE prefix = ?", (match.group(1),)
        ).fetchone()
        if row is None:
            hmac.compare_digest(_hash(key), _hash(""))  # same work either way
            return None
        if not hmac.compare_digest(digest.encode(), str(row[0]).encode()):
            return None
        record = _record(row[1:])
        if not record.is_active:
            return None
        self._verified[digest] = record
        return record

    def touch(self, key_id: str, when: str) -> None:
        """Remember when a key was last used."""
        self._db.execute("UPDATE keys SET last_used_at = ? WHERE id = ?", (when, key_id))

    def get(self, key_id: str) -> KeyRecord | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        return _record(row) if row else None

    def active(self, name: str) -> KeyRecord | None:
        key_id = self._active_id(name)
        return self.get(key_id) if key_id is not None else None

    def all(self) -> list[KeyRecord]:
        """Every key, oldest first (revoked ones too)."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY created_at, rowid")
        return [_record(row) for row in rows]

    # -- sandbox owners --------------------------------------------------------------

    def set_owner(self, sandbox_id: str, owner: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO owners (sandbox_id, owner) VALUES (?, ?)", (sandbox_id, owner)
        )

    def owners(self) -> dict[str, str]:
        """Every sandbox id this class made, with the name that owns it."""
        return dict(self._db.execute("SELECT sandbox_id, owner FROM owners").fetchall())

    def _active_id(self, name: str) -> str | None:
        row = self._db.execute(
            "SELECT id FROM keys WHERE name = ? AND revoked_at IS NULL", (name,)
        ).fetchone()
        return str(row[0]) if row else None


_COLUMNS: Final = (
    "id, prefix, name, admin, quotas, scope, created_at, last_used_at, revoked_at, "
    "rotation_parent_key_id"
)


def _record(row: tuple[Any, ...]) -> KeyRecord:
    return KeyRecord(
        id=row[0],
        prefix=row[1],
        name=row[2],
        admin=bool(row[3]),
        quotas=json.loads(row[4] or "{}"),
        scope=row[5],
        created_at=row[6],
        last_used_at=row[7],
        revoked_at=row[8],
        rotation_parent_key_id=row[9],
    )
