"""Per-key limits: what a key may hold at once and how large a run may grow.

Server flags set the defaults for student keys; a key may override any of them.
The server's own token and ``--admin`` keys are unlimited unless overridden.
Counts are checked before anything is made, so a refused request leaves nothing
behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Final

from sandbox_magic.server.errors import ApiError

__all__ = ["QUOTA_NAMES", "UNLIMITED", "Quotas", "parse_overrides", "quota_exceeded"]


@dataclass(frozen=True, slots=True)
class Quotas:
    """Limits of one key; ``None`` means unlimited."""

    #: Live sandboxes the key owns.
    sandboxes: int | None = 2
    #: Live contexts (kernels) over all its sandboxes.
    contexts: int | None = 4
    #: Runs queued or running at once.
    concurrent_runs: int | None = 4
    #: The longest ``timeout`` (seconds) a run may ask for.
    run_timeout: int | None = 600
    #: Output (stdout, stderr, results) one run may produce.
    output_bytes: int | None = 16 * 1024 * 1024
    #: Artifact bytes the key may keep stored.
    artifact_bytes: int | None = 512 * 1024 * 1024
    #: Requests per second, sustained (bursts of twice as many pass); then 429, retryable.
    requests_per_second: int | None = 100

    def merged(self, overrides: Mapping[str, int | None]) -> Quotas:
        """These limits with some replaced."""
        return replace(self, **{k: v for k, v in overrides.items() if k in QUOTA_NAMES})

    def to_json(self) -> dict[str, int | None]:
        return asdict(self)


QUOTA_NAMES: Final = frozenset(field.name for field in fields(Quotas))
UNLIMITED: Final = Quotas(**dict.fromkeys(QUOTA_NAMES))


def parse_overrides(raw: Any) -> dict[str, int | None]:
    """Validated overrides (``{"contexts": 2, "run_timeout": null}``); ValueError if bad."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("'quotas' must be an object of quota names to integers (or null).")
    parsed: dict[str, int | None] = {}
    for name, value in raw.items():
        if name not in QUOTA_NAMES:
            known = ", ".join(sorted(QUOTA_NAMES))
            raise ValueError(f"Unknown quota {name!r}; the quotas are: {known}.")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"Quota {name!r} must be an integer or null (unlimited).")
        if value is not None and value < 0:
            raise ValueError(f"Quota {name!r} must not be negative.")
        parsed[name] = value
    return parsed


def quota_exceeded(name: str, limit: int, what: str, *, status: int = 429) -> ApiError:
    """The error of a breached quota, naming it (never retried by clients)."""
    return ApiError(
        status,
        "quota_exceeded",
        f"Quota '{name}' exceeded: {what} (limit {limit}). "
        "Free something up, or ask your teacher to raise it.",
        retryable=False,
    )
