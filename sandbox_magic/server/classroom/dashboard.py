"""``/dashboard``: the teacher's page, behind the admin key, with no external assets.

The page is static (``static/``); it signs in with ``POST /dashboard/login`` (the key
in a JSON body, never in a URL), which sets an HttpOnly, SameSite=Strict session
cookie. ``GET /dashboard/api/state`` gives every student's sandboxes, contexts (CPU,
memory), queued and running runs, recent failures and last activity; the page polls
it every few seconds. ``POST /dashboard/api/action`` cancels a run, restarts a
context, deletes a sandbox or revokes a key. Actions need the session cookie *and*
an ``X-Dashboard`` header, which another site's form cannot send.

Sessions live in memory (a server restart signs the teacher out) and end when the
admin key that opened them is revoked.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox_magic.server.classroom.keys import ADMIN_NAME
from sandbox_magic.server.classroom.tenancy import Tenancy, first_line
from sandbox_magic.server.classroom.usage import UsageSampler
from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.runs import RunState
from sandbox_magic.server.util import now

__all__ = ["Dashboard"]

COOKIE: Final = "sandbox_magic_dashboard"
_SESSION_SECONDS: Final = 12 * 3600
_STATIC: Final = Path(__file__).with_name("static")
_HEADERS: Final = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


@dataclass(frozen=True, slots=True)
class _Session:
    key_id: str | None
    name: str
    expires: float


def _seconds_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round(max(0.0, (now() - moment).total_seconds()), 1)


class Dashboard:
    """The page, its sessions and its JSON API."""

    def __init__(self, tenancy: Tenancy, niceness: Any) -> None:
        self._tenancy = tenancy
        self._niceness = niceness
        self._sessions: dict[str, _Session] = {}
        self._usage = UsageSampler()

    def routes(self) -> list[Route]:
        return [
            Route("/dashboard", self.page, methods=["GET"]),
            Route("/dashboard/static/{name}", self.asset, methods=["GET"]),
            Route("/dashboard/login", self.login, methods=["POST"]),
            Route("/dashboard/logout", self.logout, methods=["POST"]),
            Route("/dashboard/api/state", self.state, methods=["GET"]),
            Route("/dashboard/api/action", self.action, methods=["POST"]),
        ]

    # -- the page ----------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        return FileResponse(_STATIC / "dashboard.html", headers=_HEADERS)

    async def asset(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("dashboard.js", "dashboard.css"):
            raise ApiError.not_found("No such file.")
        kind = "text/javascript" if name.endswith(".js") else "text/css"
        return FileResponse(_STATIC / name, media_type=kind, headers=_HEADERS)

    # -- sessions ----------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            key = body["key"] if isinstance(body, dict) else None
        except (ValueError, KeyError):
            key = None
        if not isinstance(key, str) or not key.strip():
            raise ApiError.bad_request('Send the admin key as {"key": "..."}.')
        caller = self._tenancy.authenticate(f"Bearer {key.strip()}")
        if caller is None or not caller.admin:
            raise ApiError(401, "auth_failed", "That is not an admin (teacher) key.")
        token = secrets.token_urlsafe(32)
        self._sessions[token] = _Session(caller.key_id, caller.name, time.time() + _SESSION_SECONDS)
        response = JSONResponse({"name": caller.name}, headers=_HEADERS)
        response.set_cookie(
            COOKIE,
            token,
            max_age=_SESSION_SECONDS,
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        self._sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = JSONResponse({"signed_out": True}, headers=_HEADERS)
        response.delete_cookie(COOKIE, path="/dashboard")
        return response

    def _signed_in(self, request: Request) -> _Session:
        token = request.cookies.get(COOKIE, "")
        session = self._sessions.get(token)
        if session is not None and session.expires < time.time():
            del self._sessions[token]
            session = None
        if session is not None and session.key_id is not None:
            record = self._tenancy.keys.get(session.key_id)
            if record is None or not record.is_active or not record.admin:
                del self._sessions[token]
                session = None
        if session is None:
            raise ApiError(401, "auth_failed", "Sign in with the admin key.")
        return session

    # -- the state of the class --------------------------------------------------------

    async def state(self, request: Request) -> Response:
        self._signed_in(request)
        return JSONResponse(self.snapshot(), headers=_HEADERS)

    def snapshot(self) -> dict[str, Any]:
        """Every name with what it holds and does right now."""
        tenancy = self._tenancy
        runs_by_owner: dict[str, list[RunState]] = {}
        for run in tenancy.service.runs.values():
            if not run.terminal:
                runs_by_owner.setdefault(tenancy.owner_of(run.sandbox_id), []).append(run)
        keys = {record.name: record for record in tenancy.keys.all() if record.is_active}
        nice: dict[str, int] = self._niceness()
        pids: set[int | str] = set()
        students = []
        for name in tenancy.names():
            sandboxes = [self._sandbox_row(sid, pids) for sid in tenancy.owned_sandboxes(name)]
            record = keys.get(name)
            activity = tenancy.activity(name)
            runs = sorted(runs_by_owner.get(name, []), key=lambda r: r.created_at)
            students.append(
                {
                    "name": name,
                    "admin": record.admin if record is not None else name == ADMIN_NAME,
                    "key": None if record is None else {"id": record.id, "prefix": record.prefix},
                    "last_activity": activity.last_seen,
                    "idle_seconds": _seconds_since(activity.last_seen),
                    "sandboxes": sandboxes,
                    "runs": [_run_row(run, nice.get(run.id)) for run in runs],
                    "failures": tenancy.failures(name)[::-1],
                    "cpu_percent": _round(sum(s["cpu_percent"] or 0.0 for s in sandboxes)),
                    "memory_mb": _round(sum(s["memory_mb"] or 0.0 for s in sandboxes)),
                }
            )
        self._usage.forget_except(pids)
        return {"students": students, "generated_at": now().isoformat()}

    def _sandbox_row(self, sandbox_id: str, pids: set[int | str]) -> dict[str, Any]:
        """A sandbox with its contexts; its usage from its cgroups where it has them,
        else the sum of its kernels'."""
        sandbox = self._tenancy.service.sandboxes[sandbox_id]
        contexts: list[dict[str, Any]] = []
        for context in sandbox.contexts.values():
            pid = context.kernel.pid
            usage = self._usage.read(pid) if pid is not None else None
            if pid is not None:
                pids.add(pid)
            contexts.append(
                {
                    "id": context.id,
                    "language": context.language,
                    "busy": context.current is not None,
                    "cpu_percent": None if usage is None else _round(usage.cpu_percent),
                    "memory_mb": None if usage is None else usage.memory_mb,
                    "usage_source": None if usage is None else usage.source,
                }
            )
        cgroup = sandbox.jail.cgroup if sandbox.jail is not None else None
        if cgroup is not None:
            usage = self._usage.read_sandbox(sandbox_id, cgroup.usage())
            pids.add(sandbox_id)
            cpu, memory, source = _round(usage.cpu_percent), usage.memory_mb, usage.source
        else:
            cpu = _round(sum(c["cpu_percent"] or 0.0 for c in contexts))
            memory = _round(sum(c["memory_mb"] or 0.0 for c in contexts))
            source = "proc"
        return {
            "id": sandbox_id,
            "created_at": sandbox.record["created_at"],
            "contexts": contexts,
            "cpu_percent": cpu,
            "memory_mb": memory,
            "usage_source": source,
        }

    # -- actions -----------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        self._signed_in(request)
        if request.headers.get("x-dashboard") != "1":
            raise ApiError(403, "permission_denied", "Dashboard actions come from the dashboard.")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("action"), str):
            raise ApiError.bad_request('Send {"action": ..., ...ids}.')
        done = await self._act(body)
        return JSONResponse({"done": done}, headers=_HEADERS)

    async def _act(self, body: dict[str, Any]) -> str:
        service = self._tenancy.service
        action = body["action"]

        def text(field: str) -> str:
            value = body.get(field)
            if not isinstance(value, str) or not value:
                raise ApiError.bad_request(f"'{field}' is required for {action}.")
            return value

        if action == "cancel_run":
            run = service.cancel_run(text("sandbox_id"), text("run_id"))
            return f"asked run {run['id']} to stop"
        if action == "restart_context":
            context = service.context(text("sandbox_id"), text("context_id"))
            await context.restart()
            return f"restarted context {context.id}"
        if action == "delete_sandbox":
            sandbox_id = text("sandbox_id")
            await service.delete_sandbox(sandbox_id)
            return f"deleted sandbox {sandbox_id}"
        if action == "revoke_key":
            name = text("name")
            if self._tenancy.keys.revoke_name(name) is None:
                raise ApiError.not_found(f"{name} has no active key.")
            return f"revoked the key of {name}"
        raise ApiError.bad_request(f"Unknown action {action!r}.")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _run_row(run: RunState, nice: int | None) -> dict[str, Any]:
    started = run.started_at if run.status == "running" else run.created_at
    return {
        "id": run.id,
        "sandbox_id": run.sandbox_id,
        "context_id": run.context_id,
        "status": run.status,
        "first_line": first_line(run.code),
        "elapsed_seconds": _seconds_since(started),
        "nice": nice,
    }
