"""Small helpers shared by the server modules: ids and timestamps."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

__all__ = ["iso", "new_id", "now", "now_iso"]


def new_id(prefix: str) -> str:
    """A fresh random id such as ``run_3f9a0c1d2e4b5a69``."""
    return f"{prefix}_{secrets.token_hex(8)}"


def now() -> datetime:
    """The current time, timezone-aware (UTC)."""
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """RFC 3339 with milliseconds and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now_iso(offset: timedelta | None = None) -> str:
    """The current time (plus an optional offset) as RFC 3339."""
    moment = now() if offset is None else now() + offset
    return iso(moment)
