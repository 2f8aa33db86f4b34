"""Who is asking, what they own and what they may still make.

`Tenancy.authenticate` turns an ``Authorization`` header into a `Principal`: the
server's own token is the admin (the teacher); a key from `KeyStore` is its name
(a student), or an admin when made with ``--admin``. Every sandbox has an owner
name; a student sees only its own (others answer 404, exactly like ids that do not
exist), an admin sees all. Quota checks count what the owner holds right now, plus
what is being made, so two requests at once cannot both slip under a limit.
"""

from __future__ import annotations

import contextlib
import hmac
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox_magic.server.classroom.keys import ADMIN_NAME, KeyRecord, KeyStore
from sandbox_magic.server.classroom.quotas import UNLIMITED, Quotas, quota_exceeded
from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.runs import Outcome
from sandbox_magic.server.util import now_iso

if TYPE_CHECKING:
    from sandbox_magic.server.runs import RunState
    from sandbox_magic.server.service import SandboxService

__all__ = ["Activity", "Principal", "Tenancy", "first_line"]

#: Seconds between two ``last_used_at`` writes for one key.
_TOUCH_EVERY = 10.0
#: Failed runs remembered per name, for the dashboard.
_FAILURES_KEPT = 3


def first_line(code: str) -> str:
    """The first non-blank line of some code, shortened."""
    for line in code.splitlines():
        if line.strip():
            return line.strip()[:120]
    return ""


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: a name, whether it is an admin, and its quotas."""

    name: str
    admin: bool
    quotas: Quotas
    key_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "admin": self.admin,
            "key_id": self.key_id,
            "quotas": self.quotas.to_json(),
        }


@dataclass(slots=True)
class Activity:
    """When a name last made a request, and what it is making right now."""

    last_seen: str | None = None
    last_seen_monotonic: float = 0.0
    pending: dict[str, int] = field(default_factory=dict)


class Tenancy:
    """Keys, owners and quotas of one server."""

    def __init__(self, service: SandboxService, *, admin_token: str, defaults: Quotas) -> None:
        self.service = service
        self.keys = KeyStore(service.config.state_dir)
        self.defaults = defaults
        self._admin_token = admin_token.encode()
        self._owners = self.keys.owners()
        self._activity: dict[str, Activity] = {}
        self._touched: dict[str, float] = {}
        self._failures: dict[str, deque[dict[str, Any]]] = {}
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when)

    def close(self) -> None:
        self.keys.close()

    # -- who ------------------------------------------------------------------------

    def authenticate(self, header: str | None) -> Principal | None:
        """The principal of an ``Authorization: Bearer`` header, or None."""
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = value.strip()
        if hmac.compare_digest(token.encode(), self._admin_token):
            principal = Principal(ADMIN_NAME, True, UNLIMITED)
        else:
            record = self.keys.verify(token)
            if record is None:
                return None
            principal = self.principal_of(record)
            self._touch(record)
        self._seen(principal.name)
        return principal

    def principal_of(self, record: KeyRecord) -> Principal:
        base = UNLIMITED if record.admin else self.defaults
        return Principal(record.name, record.admin, base.merged(record.quotas), record.id)

    def _touch(self, record: KeyRecord) -> None:
        moment = time.monotonic()
        if moment - self._touched.get(record.id, -_TOUCH_EVERY) >= _TOUCH_EVERY:
            self._touched[record.id] = moment
            self.keys.touch(record.id, now_iso())

    def _seen(self, name: str) -> None:
        activity = self._activity.setdefault(name, Activity())
        activity.last_seen = now_iso()
        activity.last_seen_monotonic = time.monotonic()

    def throttle(self, principal: Principal) -> float | None:
        """None if the request may go now, else the seconds until it may (token bucket)."""
        rate = principal.quotas.requests_per_second
        if rate is None:
            return None
        burst = 2.0 * rate
        moment = time.monotonic()
        tokens, since = self._buckets.get(principal.name, (burst, moment))
        tokens = min(burst, tokens + (moment - since) * rate)
        if tokens < 1.0:
            self._buckets[principal.name] = (tokens, moment)
            return (1.0 - tokens) / rate if rate > 0 else 60.0
        self._buckets[principal.name] = (tokens - 1.0, moment)
        return None

    def activity(self, name: str) -> Activity:
        return self._activity.get(name) or Activity()

    # -- what they own ---------------------------------------------------------------

    def owner_of(self, sandbox_id: str) -> str:
        """The owning name; sandboxes older than the class belong to the admin."""
        return self._owners.get(sandbox_id, ADMIN_NAME)

    def set_owner(self, sandbox_id: str, principal: Principal) -> None:
        self._owners[sandbox_id] = principal.name
        self.keys.set_owner(sandbox_id, principal.name)

    def may_see(self, principal: Principal, sandbox_id: str) -> bool:
        return principal.admin or self.owner_of(sandbox_id) == principal.name

    def check_sandbox(self, principal: Principal, sandbox_id: str) -> None:
        """404, worded as for an id that does not exist, unless the caller may see it."""
        if not self.may_see(principal, sandbox_id):
            raise ApiError.not_found(f"Sandbox {sandbox_id} does not exist.")

    def owned_sandboxes(self, name: str) -> list[str]:
        return [sid for sid in self.service.sandboxes if self.owner_of(sid) == name]

    def names(self) -> list[str]:
        """Every name that owns something or holds a key, admin first."""
        found = {ADMIN_NAME, *self._owners.values()}
        found.update(record.name for record in self.keys.all())
        return sorted(found, key=lambda name: (name != ADMIN_NAME, name))

    # -- usage and quotas ------------------------------------------------------------

    def usage(self, name: str) -> dict[str, int]:
        """What a name holds right now, by quota name."""
        sandboxes = self.owned_sandboxes(name)
        contexts = sum(len(self.service.sandboxes[sid].contexts) for sid in sandboxes)
        owned_ever = [sid for sid, owner in self._owners.items() if owner == name]
        return {
            "sandboxes": len(sandboxes),
            "contexts": contexts,
            "concurrent_runs": len(self.live_runs(name)),
            "artifact_bytes": self.service.store.artifact_bytes(owned_ever),
        }

    def live_runs(self, name: str) -> list[RunState]:
        return [
            run
            for run in self.service.runs.values()
            if not run.terminal and self.owner_of(run.sandbox_id) == name
        ]

    @contextlib.contextmanager
    def reserve(self, principal: Principal, quota: str, what: str) -> Iterator[None]:
        """Hold one more of ``quota`` while it is made; 429 if the limit is reached."""
        limit = getattr(principal.quotas, quota)
        if limit is None:
            yield
            return
        pending = self._activity.setdefault(principal.name, Activity()).pending
        held = self.usage(principal.name)[quota] + pending.get(quota, 0)
        if held >= limit:
            raise quota_exceeded(quota, limit, f"{principal.name} already has {held} {what}")
        pending[quota] = pending.get(quota, 0) + 1
        try:
            yield
        finally:
            pending[quota] -= 1

    def run_timeout(self, principal: Principal, requested: int | None) -> int | None:
        """The timeout to use; 403 when the request asks for more than the quota."""
        limit = principal.quotas.run_timeout
        if limit is None:
            return requested
        if requested is not None and requested > limit:
            raise quota_exceeded(
                "run_timeout", limit, f"a run may take at most {limit} s", status=403
            )
        return min(requested or self.service.config.default_run_timeout, limit)

    def check_artifact_room(self, principal: Principal) -> None:
        """429 when the name already keeps its whole artifact allowance."""
        limit = principal.quotas.artifact_bytes
        if limit is None:
            return
        used = self.usage(principal.name)["artifact_bytes"]
        if used >= limit:
            raise quota_exceeded(
                "artifact_bytes",
                limit,
                f"{principal.name} keeps {used} bytes of artifacts; delete some first",
            )

    def note_failures(self, principal: Principal, run: RunState) -> None:
        """Remember the run if it ends ``failed`` (the dashboard shows recent ones)."""

        def ended(event: dict[str, Any]) -> None:
            if event["type"] == "end" and run.status == "failed":
                kept = self._failures.setdefault(principal.name, deque(maxlen=_FAILURES_KEPT))
                kept.append(
                    {
                        "id": run.id,
                        "sandbox_id": run.sandbox_id,
                        "first_line": first_line(run.code),
                        "reason": run.failure_reason,
                        "completed_at": run.completed_at,
                    }
                )

        run.recorder.listen(ended)

    def failures(self, name: str) -> list[dict[str, Any]]:
        """Recent failed runs of a name, oldest first."""
        return list(self._failures.get(name, ()))

    def watch_output(self, principal: Principal, run: RunState) -> None:
        """Fail the run once its output grows past the ``output_bytes`` quota."""
        limit = principal.quotas.output_bytes
        if limit is None:
            return
        seen = 0

        def count(event: dict[str, Any]) -> None:
            nonlocal seen
            if event["type"] in ("stdout", "stderr"):
                seen += len(event.get("text") or "")
            elif event["type"] == "result":
                seen += _payload_size(event)
            if seen > limit and not run.stop.is_set():
                reason = (
                    f"quota 'output_bytes' exceeded: the run produced more than "
                    f"{limit} bytes of output, so it was stopped"
                )
                run.request_stop(Outcome("failed", reason))

        run.recorder.listen(count)


def _payload_size(event: dict[str, Any]) -> int:
    size = 0
    for value in event.values():
        if isinstance(value, str):
            size += len(value)
        elif isinstance(value, dict):
            size += sum(len(v) for v in value.values() if isinstance(v, str))
    return size
