"""The caller's key as ``%sandbox status`` shows it: name, role, quotas and what is in use.

Fed by ``GET /v1/account/me`` of the local server (see the README's "Running a
class"); the key itself is never part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox_magic.render.text import human_size

__all__ = ["account_rows"]

#: quota name -> (label, how to show a value)
_QUOTAS: dict[str, tuple[str, str]] = {
    "sandboxes": ("sandboxes", "count"),
    "contexts": ("contexts", "count"),
    "concurrent_runs": ("runs at once", "count"),
    "run_timeout": ("longest run", "seconds"),
    "output_bytes": ("output per run", "bytes"),
    "artifact_bytes": ("artifacts kept", "bytes"),
    "requests_per_second": ("requests/s", "count"),
}


def _value(value: Any, kind: str) -> str:
    if value is None:
        return "unlimited"
    if not isinstance(value, int):
        return str(value)
    if kind == "bytes":
        return human_size(value)
    if kind == "seconds":
        return f"{value} s"
    return str(value)


def account_rows(account: Mapping[str, Any] | None) -> list[list[str]]:
    """Rows for the status table; none when the server told nothing."""
    if not account or not isinstance(account.get("name"), str):
        return []
    role = "admin (teacher)" if account.get("admin") else "student"
    rows = [["key name", f"{account['name']} ({role})"]]
    quotas = account.get("quotas")
    usage = account.get("usage")
    if isinstance(quotas, Mapping):
        used = usage if isinstance(usage, Mapping) else {}
        parts = []
        for name, (label, kind) in _QUOTAS.items():
            if name not in quotas:
                continue
            limit = _value(quotas[name], kind)
            if name in used and kind != "seconds":
                parts.append(f"{label} {_value(used[name], kind)} of {limit}")
            else:
                parts.append(f"{label} {limit}")
        rows.append(["quotas", "; ".join(parts)])
    return rows
