"""The HTTP surface: Starlette routes of the wire contract, errors, auth and limits.

Every ``/v1`` route needs ``Authorization: Bearer <token>``; ``/healthz`` does not.
Every error answers ``{"error": {"message", "code", "request_id", "retryable"}}``
with ``X-Request-Id`` set. Bodies larger than ``max_body_bytes`` get 413.
``create_app`` gives an app whose lifespan starts and stops the kernel pool; tests
using ``httpx.ASGITransport`` (which runs no lifespan) can enter
``app.router.lifespan_context(app)`` themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox_magic import __version__
from sandbox_magic.server import languages
from sandbox_magic.server.artifacts import is_previewable
from sandbox_magic.server.classroom import keys_routes
from sandbox_magic.server.classroom.dashboard import Dashboard
from sandbox_magic.server.classroom.fairness import CpuDemoter, FairGate
from sandbox_magic.server.classroom.keys_routes import principal
from sandbox_magic.server.classroom.tenancy import Principal, Tenancy
from sandbox_magic.server.config import ServerConfig
from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.files import get_file, put_file
from sandbox_magic.server.generations import (
    ASYNC_RUNS_UNAVAILABLE,
    Generation,
    error_body_for,
    generation_of,
    machine_list,
    machine_view,
    prefixes_for,
    run_view,
    with_links,
)
from sandbox_magic.server.kernelspecs import resolve_language
from sandbox_magic.server.runs import ContextRuntime, RunState
from sandbox_magic.server.sdk_support import sdk_support_routes
from sandbox_magic.server.service import SandboxService
from sandbox_magic.server.store import Page
from sandbox_magic.server.util import new_id
from sandbox_magic.server.validation import (
    expect_object,
    optional_bool,
    optional_int,
    optional_object,
    optional_str,
    optional_str_map,
    query_int,
    required_str,
)
from sandbox_magic.server.watch import MAX_WATCH_MS, settle, settled_lines, watch_lines
from sandbox_magic.wire import (
    AUTH_FAILED,
    CODE_RAISED,
    FEATURES_HEADER,
    INTERNAL_ERROR,
    INVALID_REQUEST,
    NOT_FOUND,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    TIMED_OUT,
    WATCH_MEDIA_TYPE,
    ServerFeatures,
)

__all__ = ["create_app", "route_table"]

log = logging.getLogger(__name__)

_ARTIFACT_KINDS = frozenset({"file", "image", "html", "document"})
_MAX_TIMEOUT = 7 * 24 * 3600
_STREAM_EVENTS = frozenset({"stdout", "stderr", "result", "error", "artifact"})

Handler = Callable[[Request], Awaitable[Response]]


# -- plumbing ------------------------------------------------------------------------


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id") or new_id("req"))


def _generation(request: Request) -> Generation:
    return generation_of(request.url.path)


def _error_response(
    request_id: str,
    status: int,
    code: str,
    message: str,
    *,
    generation: Generation = "0",
    retryable: bool = False,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body_for(generation, code, message, request_id, retryable=retryable),
        status_code=status,
        headers={"X-Request-Id": request_id, **(headers or {})},
    )


class _Gate:
    """Pure ASGI middleware: request ids, bearer auth on /v1, early 413 on big bodies.

    The authenticated `Principal` is put in ``scope["state"]["principal"]``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticate: Callable[[str | None], Principal | None],
        throttle: Callable[[Principal], float | None],
        max_body_bytes: int,
        max_file_bytes: int,
        features: ServerFeatures,
    ) -> None:
        self.app = app
        self.authenticate = authenticate
        self.throttle = throttle
        self.max_body_bytes = max_body_bytes
        self.max_file_bytes = max_file_bytes
        advertised = features.header_value()
        self.feature_header = (
            [(FEATURES_HEADER.lower().encode(), advertised.encode())] if advertised else []
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        response: Response | None = None
        path: str = scope["path"]
        caller = None
        if path == "/v1" or path.startswith("/v1/"):
            caller = self.authenticate(headers.get("authorization"))
            scope["state"]["principal"] = caller
        wait = self.throttle(caller) if caller is not None else None
        if (path == "/v1" or path.startswith("/v1/")) and caller is None:
            message = (
                "Missing bearer token: send 'Authorization: Bearer <token>'."
                if "authorization" not in headers
                else "The bearer token is not accepted."
            )
            response = _error_response(
                request_id,
                401,
                AUTH_FAILED,
                message,
                generation=generation_of(path),
                headers={"WWW-Authenticate": "Bearer"},
            )
        elif wait is not None and caller is not None:
            response = _too_many(request_id, caller, wait)
        elif _too_large(headers.get("content-length"), limit := self._limit(scope)):
            response = _error_response(
                request_id,
                413,
                INVALID_REQUEST,
                f"The request body is larger than {limit} bytes.",
                generation=generation_of(path),
            )
        if response is not None:
            await response(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                if not any(name.lower() == b"x-request-id" for name, _ in raw):
                    raw.append((b"x-request-id", request_id.encode()))
                if path.startswith("/v1/"):
                    raw.extend(self.feature_header)
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_id)

    def _limit(self, scope: Scope) -> int:
        """Raw file uploads have their own, larger limit."""
        if scope["method"] == "PUT" and scope["path"].endswith("/file"):
            return self.max_file_bytes
        return self.max_body_bytes


def _too_many(request_id: str, caller: Principal, wait: float) -> Response:
    """429 for a key over its ``requests_per_second`` (retryable, with Retry-After)."""
    return _error_response(
        request_id,
        429,
        "rate_limit_exceeded",
        f"Too many requests from {caller.name}: quota 'requests_per_second' is "
        f"{caller.quotas.requests_per_second}. Retry after the Retry-After delay.",
        retryable=True,
        headers={"Retry-After": str(max(1, math.ceil(wait)))},
    )


def _too_large(length: str | None, limit: int) -> bool:
    try:
        return length is not None and int(length) > limit
    except ValueError:
        return False


async def _read_json(request: Request) -> Any:
    """The parsed body (None when empty); 413 when too large, 400 when not JSON."""
    limit: int = request.app.state.config.max_body_bytes
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, INVALID_REQUEST, f"The request body is larger than {limit} bytes.")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError.bad_request(f"The request body is not valid JSON: {error}.") from None


async def _read_object(request: Request, *, required: bool) -> dict[str, Any]:
    body = await _read_json(request)
    if body is None:
        if required:
            raise ApiError.bad_request("A JSON object body is required.")
        return {}
    return dict(expect_object(body))


def _service(request: Request) -> SandboxService:
    service: SandboxService = request.app.state.service
    return service


def _tenancy(request: Request) -> Tenancy:
    tenancy: Tenancy = request.app.state.tenancy
    return tenancy


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not 0 < len(key) <= 255:
        raise ApiError.bad_request("Idempotency-Key must be 1 to 255 characters.")
    return key


def _page(page: Page, view: Callable[[dict[str, Any]], dict[str, Any]]) -> JSONResponse:
    items = [view(item) for item in page.items]
    return JSONResponse({"items": items, "next_cursor": page.next_cursor})


def _cursor(request: Request) -> int | None:
    return query_int(request.query_params, "cursor", default=None, minimum=0, maximum=2**62)


def _limit(request: Request) -> int:
    limit = query_int(request.query_params, "limit", default=50, minimum=1, maximum=1000)
    return 50 if limit is None else limit


# -- routes: health and sandboxes ----------------------------------------------------


async def healthz(request: Request) -> Response:
    service = _service(request)
    offered = languages.report(confined=service.confinement.active)
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "warm_kernels_ready": service.pool.ready_count,
            "languages": offered,
            "isolation": service.isolation(),
            "limits": service.config.limits.describe() if service.confinement.active else None,
        }
    )


async def create_sandbox(request: Request) -> Response:
    body = await _read_object(request, required=False)
    template = optional_str(body, "template") or "code-interpreter"
    timeout_ms = optional_int(body, "timeout_ms", minimum=0)
    metadata = optional_object(body, "metadata")
    envs = optional_str_map(body, "envs")
    inactivity_timeout_ms = optional_int(body, "inactivity_timeout_ms", minimum=0)
    vcpus = optional_int(body, "vcpus", minimum=1)
    memory_mb = optional_int(body, "memory_mb", minimum=1)
    internet_access = bool(optional_bool(body, "internet_access"))
    disk_mb = optional_int(body, "disk_mb", minimum=1)
    service, tenancy, caller = _service(request), _tenancy(request), principal(request)

    async def create() -> str:
        with tenancy.reserve(caller, "sandboxes", "sandboxes"):
            record = await service.create_sandbox(
                template=template,
                timeout_ms=timeout_ms,
                inactivity_timeout_ms=inactivity_timeout_ms,
                metadata=metadata,
                envs=envs,
                vcpus=vcpus,
                memory_mb=memory_mb,
                internet_access=internet_access,
                disk_mb=disk_mb,
                id_prefix="mch" if _generation(request) == "1" else "sb",
            )
            tenancy.set_owner(str(record["id"]), caller)
        return str(record["id"])

    scope = "sandbox" if caller.key_id is None else f"sandbox:{caller.name}"
    sandbox_id = await service.idempotent(scope, _idempotency_key(request), body, create)
    return JSONResponse(_shown(request, service.sandbox(sandbox_id).public()), status_code=201)


def _shown(request: Request, sandbox: dict[str, Any]) -> dict[str, Any]:
    """A sandbox record (a 1.x machine under /v1/machines); for an admin, with its
    owner's name (ours)."""
    if principal(request).admin:
        sandbox = {**sandbox, "owner": _tenancy(request).owner_of(sandbox["id"])}
    return machine_view(sandbox) if _generation(request) == "1" else sandbox


async def list_sandboxes(request: Request) -> Response:
    tenancy, caller = _tenancy(request), principal(request)
    sandboxes = [
        _shown(request, sandbox)
        for sandbox in _service(request).list_sandboxes()
        if tenancy.may_see(caller, sandbox["id"])
    ]
    if _generation(request) == "1":
        return JSONResponse(machine_list(sandboxes))
    return JSONResponse(sandboxes)


async def get_sandbox(request: Request) -> Response:
    sandbox = _service(request).sandbox(request.path_params["sandbox_id"])
    return JSONResponse(_shown(request, sandbox.public()))


async def delete_sandbox(request: Request) -> Response:
    await _service(request).delete_sandbox(request.path_params["sandbox_id"])
    return Response(status_code=204)


# -- routes: contexts ----------------------------------------------------------------


async def create_context(request: Request) -> Response:
    sandbox_id = request.path_params["sandbox_id"]
    service = _service(request)
    service.sandbox(sandbox_id)
    body = await _read_object(request, required=False)
    language = optional_str(body, "language")
    cwd = optional_str(body, "cwd")

    caller = principal(request)

    async def create() -> str:
        with _tenancy(request).reserve(caller, "contexts", "contexts"):
            async with _kernel_starts(request).slot(caller.name):
                context = await service.create_context(sandbox_id, language=language, cwd=cwd)
        return str(context["id"])

    scope = f"context:{sandbox_id}"
    context_id = await service.idempotent(scope, _idempotency_key(request), body, create)
    return JSONResponse(service.context(sandbox_id, context_id).to_json(), status_code=201)


async def list_contexts(request: Request) -> Response:
    return JSONResponse(_service(request).list_contexts(request.path_params["sandbox_id"]))


async def delete_context(request: Request) -> Response:
    params = request.path_params
    await _service(request).delete_context(params["sandbox_id"], params["context_id"])
    return Response(status_code=204)


async def restart_context(request: Request) -> Response:
    params = request.path_params
    context = _service(request).context(params["sandbox_id"], params["context_id"])
    await context.restart()
    # The spec's body, with the context's own fields beside it.
    return JSONResponse({**context.to_json(), "status": "restarted"})


async def interrupt_context(request: Request) -> Response:
    params = request.path_params
    context = _service(request).context(params["sandbox_id"], params["context_id"])
    await context.interrupt()
    return JSONResponse({**context.to_json(), "status": "interrupted"})


# -- routes: runs --------------------------------------------------------------------


def _submit(
    request: Request,
    caller: Principal,
    context: ContextRuntime,
    code: str,
    envs: dict[str, str],
    timeout: int | None,
    keep_processes: bool = False,
) -> RunState:
    """Submit a run within the caller's quotas."""
    tenancy = _tenancy(request)
    timeout = tenancy.run_timeout(caller, timeout)
    tenancy.check_artifact_room(caller)
    with tenancy.reserve(caller, "concurrent_runs", "runs queued or running"):
        run = _service(request).submit_run(
            context, code=code, envs=envs, timeout=timeout, keep_processes=keep_processes
        )
    tenancy.watch_output(caller, run)
    tenancy.note_failures(caller, run)
    return run


def _kernel_starts(request: Request) -> FairGate:
    gate: FairGate = request.app.state.kernel_starts
    return gate


def _run_options(body: dict[str, Any]) -> tuple[dict[str, str], int | None]:
    return (
        optional_str_map(body, "envs"),
        optional_int(body, "timeout", minimum=1, maximum=_MAX_TIMEOUT),
    )


async def create_run(request: Request) -> Response:
    sandbox_id = request.path_params["sandbox_id"]
    service = _service(request)
    service.sandbox(sandbox_id)
    if not request.app.state.config.async_runs:
        # As a hosted deployment without a run queue answers; /code/execute still works.
        raise ApiError(503, "feature_unavailable", ASYNC_RUNS_UNAVAILABLE)
    body = await _read_object(request, required=True)
    code = required_str(body, "code", allow_empty=True)
    context_id = required_str(body, "context_id")
    envs, timeout = _run_options(body)
    context = service.context(sandbox_id, context_id)
    wait_ms = query_int(request.query_params, "wait_ms", default=0, minimum=0, maximum=MAX_WATCH_MS)
    caller = principal(request)

    async def create() -> str:
        keep = bool(optional_bool(body, "keep_processes"))
        return _submit(request, caller, context, code, envs, timeout, keep).id

    run_id = await service.idempotent(f"run:{sandbox_id}", _idempotency_key(request), body, create)
    live = service.live_run(sandbox_id, run_id)
    # Ours: ``?wait_ms=N`` answers once the run has ended or shown output (at most N ms).
    if service.config.long_poll and live is not None and wait_ms:
        if WATCH_MEDIA_TYPE in request.headers.get("accept", ""):

            def read() -> dict[str, Any]:
                return run_view(service.get_run(sandbox_id, run_id), _generation(request))

            lines = settled_lines(live, read, within=wait_ms / 1000)
            return StreamingResponse(
                lines,
                status_code=202,
                media_type=WATCH_MEDIA_TYPE,
                headers={"Cache-Control": "no-cache"},
            )
        await settle(live, within=wait_ms / 1000)
    version = str(live.version) if live is not None else "0"
    return JSONResponse(
        run_view(service.get_run(sandbox_id, run_id), _generation(request)),
        status_code=202,
        headers={"X-Run-Version": version},
    )


async def get_run(request: Request) -> Response:
    """The run; with ``?wait_ms=N`` (ours) a long poll: answer at the run's next change.

    ``after_version`` (the ``X-Run-Version`` of the previous answer) makes the wait
    return at once if something changed in between, so no change is ever missed.
    ``?watch_ms=N`` (ours) holds the answer open and streams every change
    (`sandbox_magic.server.watch`). With ``long_poll`` off, both are ignored.
    """
    params = request.path_params
    service = _service(request)
    query = request.query_params
    long_poll = service.config.long_poll
    wait_ms = query_int(query, "wait_ms", default=0, minimum=0, maximum=30_000)
    watch_ms = query_int(query, "watch_ms", default=0, minimum=0, maximum=MAX_WATCH_MS)
    after = query_int(query, "after_version", default=None, minimum=0, maximum=2**62)
    live = service.live_run(params["sandbox_id"], params["run_id"])
    if long_poll and watch_ms:
        service.get_run(params["sandbox_id"], params["run_id"])  # 404 before streaming

        def read() -> dict[str, Any]:
            return service.get_run(params["sandbox_id"], params["run_id"])

        lines = watch_lines(live, read, after=after, within=(watch_ms or 0) / 1000)
        return StreamingResponse(
            lines, media_type=WATCH_MEDIA_TYPE, headers={"Cache-Control": "no-cache"}
        )
    if long_poll and live is not None and wait_ms:
        await live.wait_for_change(after=after, within=wait_ms / 1000)
    run = service.get_run(params["sandbox_id"], params["run_id"])
    version = str(live.version) if live is not None else "0"
    return JSONResponse(run_view(run, _generation(request)), headers={"X-Run-Version": version})


async def list_runs(request: Request) -> Response:
    status = request.query_params.get("status") or None
    if status is not None and status not in RUN_STATUSES:
        raise ApiError.bad_request(
            f"Unknown status {status!r}; use one of {', '.join(sorted(RUN_STATUSES))}."
        )
    page = _service(request).list_runs(
        request.path_params["sandbox_id"],
        status=status,
        context_id=request.query_params.get("context_id") or None,
        limit=_limit(request),
        cursor=_cursor(request),
    )
    generation = _generation(request)
    return _page(page, lambda run: run_view(run, generation))


async def cancel_run(request: Request) -> Response:
    params = request.path_params
    run = _service(request).cancel_run(params["sandbox_id"], params["run_id"])
    terminal = run["status"] in TERMINAL_STATUSES
    return JSONResponse(run_view(run, _generation(request)), status_code=200 if terminal else 202)


# -- routes: streaming execution -----------------------------------------------------


async def execute(request: Request) -> Response:
    sandbox_id = request.path_params["sandbox_id"]
    service = _service(request)
    service.sandbox(sandbox_id)
    body = await _read_object(request, required=True)
    code = required_str(body, "code", allow_empty=True)
    context_id = optional_str(body, "context_id")
    language = optional_str(body, "language")
    envs, timeout = _run_options(body)
    caller = principal(request)
    if context_id:
        context = service.context(sandbox_id, context_id)
    else:
        context = await _default_context(request, caller, sandbox_id, language)
    keep = bool(optional_bool(body, "keep_processes"))
    run = _submit(request, caller, context, code, envs, timeout, keep)
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    run.recorder.listen(events.put_nowait)
    generation = _generation(request)

    async def stream() -> AsyncIterator[str]:
        try:
            while (event := await events.get())["type"] != "end":
                if event["type"] == "artifact" and isinstance(event.get("artifact"), dict):
                    event = dict(event, artifact=with_links(event["artifact"], generation))
                if event["type"] in _STREAM_EVENTS:
                    yield _sse(event)
            for event in _closing_events(run):
                yield _sse(event)
        finally:
            if not run.terminal:  # the client went away: stop the work it asked for
                context.cancel(run)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Run-Id": run.id},
    )


async def _default_context(
    request: Request, caller: Principal, sandbox_id: str, language: str | None
) -> ContextRuntime:
    """The sandbox's default context; making it counts against the contexts quota."""
    service = _service(request)
    sandbox = service.sandbox(sandbox_id)
    choice = resolve_language(
        language, service.pool.spec_manager, confined=service.confinement.active
    )
    existing = sandbox.contexts.get(sandbox.defaults.get(choice.spec_name, ""))
    if existing is not None:
        return existing
    with _tenancy(request).reserve(caller, "contexts", "contexts"):
        async with _kernel_starts(request).slot(caller.name):
            return await service.default_context(sandbox_id, language)


def _sse(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event)}\n\n"


def _closing_events(run: RunState) -> list[dict[str, Any]]:
    """The count, and an error event when the run ended for a reason the code did not raise."""
    events: list[dict[str, Any]] = []
    count = run.recorder.execution_count
    if count is not None:
        events.append({"type": "number_of_executions", "execution_count": count})
    if run.status != "succeeded" and run.failure_code != CODE_RAISED:
        name = "RunCancelled" if run.status == "cancelled" else "RunFailed"
        if run.failure_code == TIMED_OUT:
            name = "TimeoutError"
        reason = run.failure_reason or ""
        events.append({"type": "error", "name": name, "value": reason, "traceback": ""})
    return events


# -- routes: artifacts ---------------------------------------------------------------


async def list_artifacts(request: Request) -> Response:
    kind = request.query_params.get("kind") or None
    if kind is not None and kind not in _ARTIFACT_KINDS:
        raise ApiError.bad_request(
            f"Unknown kind {kind!r}; use one of {', '.join(sorted(_ARTIFACT_KINDS))}."
        )
    page = _service(request).list_artifacts(
        request.path_params["sandbox_id"],
        context_id=request.query_params.get("context_id") or None,
        execution_count=query_int(
            request.query_params, "execution_count", default=None, minimum=0, maximum=2**62
        ),
        kind=kind,
        limit=_limit(request),
        cursor=_cursor(request),
    )
    generation = _generation(request)
    return _page(page, lambda artifact: with_links(artifact, generation))


async def get_artifact(request: Request) -> Response:
    params = request.path_params
    artifact = _service(request).get_artifact(params["sandbox_id"], params["artifact_id"])
    return JSONResponse(with_links(artifact, _generation(request)))


async def download_artifact(request: Request) -> Response:
    params = request.path_params
    path, artifact = _service(request).artifact_file(params["sandbox_id"], params["artifact_id"])
    return FileResponse(
        path,
        media_type=artifact["mime_type"],
        filename=artifact["name"].rsplit("/", 1)[-1],
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def preview_artifact(request: Request) -> Response:
    params = request.path_params
    path, artifact = _service(request).artifact_file(params["sandbox_id"], params["artifact_id"])
    if not is_previewable(artifact["mime_type"]):
        raise ApiError.not_found(
            f"Artifact {artifact['id']} ({artifact['mime_type']}) has no preview."
        )
    return FileResponse(
        path,
        media_type=artifact["mime_type"],
        content_disposition_type="inline",
        filename=artifact["name"].rsplit("/", 1)[-1],
        headers={
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox",
        },
    )


async def delete_artifact(request: Request) -> Response:
    params = request.path_params
    _service(request).delete_artifact(params["sandbox_id"], params["artifact_id"])
    return Response(status_code=204)


# -- routes: keys --------------------------------------------------------------------


async def create_key(request: Request) -> Response:
    return await keys_routes.create_key(request, await _read_object(request, required=False))


# -- errors --------------------------------------------------------------------------


async def _api_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return _error_response(
        _request_id(request),
        error.status,
        error.code,
        error.message,
        generation=_generation(request),
        retryable=error.retryable,
        headers=error.headers,
    )


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    code = {404: NOT_FOUND, 405: INVALID_REQUEST}.get(error.status_code, INVALID_REQUEST)
    message = "No such route." if error.status_code == 404 else str(error.detail)
    return _error_response(
        _request_id(request),
        error.status_code,
        code,
        message,
        generation=_generation(request),
        headers=dict(error.headers or {}),
    )


async def _internal_error(request: Request, error: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=error)
    return _error_response(
        _request_id(request),
        500,
        INTERNAL_ERROR,
        f"The server failed: {type(error).__name__}.",
        generation=_generation(request),
        retryable=True,
    )


# -- the app -------------------------------------------------------------------------


def _code_routes(prefix: str) -> list[tuple[str, str, Handler]]:
    """Every route of one API generation, under its prefix."""
    sb = f"{prefix}/{{sandbox_id}}"
    return [
        (prefix, "POST", create_sandbox),
        (prefix, "GET", list_sandboxes),
        (sb, "GET", get_sandbox),
        (sb, "DELETE", delete_sandbox),
        (f"{sb}/code/contexts", "POST", create_context),
        (f"{sb}/code/contexts", "GET", list_contexts),
        (f"{sb}/code/contexts/{{context_id}}", "DELETE", delete_context),
        (f"{sb}/code/contexts/{{context_id}}/restart", "POST", restart_context),
        (f"{sb}/code/contexts/{{context_id}}/interrupt", "POST", interrupt_context),
        (f"{sb}/code/runs", "POST", create_run),
        (f"{sb}/code/runs", "GET", list_runs),
        (f"{sb}/code/runs/{{run_id}}", "GET", get_run),
        (f"{sb}/code/runs/{{run_id}}/cancel", "POST", cancel_run),
        (f"{sb}/code/execute", "POST", execute),
        (f"{sb}/code/artifacts", "GET", list_artifacts),
        (f"{sb}/code/artifacts/{{artifact_id}}", "GET", get_artifact),
        (f"{sb}/code/artifacts/{{artifact_id}}", "DELETE", delete_artifact),
        (f"{sb}/code/artifacts/{{artifact_id}}/download", "GET", download_artifact),
        (f"{sb}/code/artifacts/{{artifact_id}}/preview", "GET", preview_artifact),
    ]


def _file_routes(prefix: str) -> list[tuple[str, str, Handler]]:
    """The raw file endpoints (``--file-endpoints``) under one generation's prefix."""
    sb = f"{prefix}/{{sandbox_id}}"
    return [(f"{sb}/file", "PUT", put_file), (f"{sb}/file", "GET", get_file)]


def route_table(api: str = "both", *, files: bool = True) -> list[tuple[str, str, Handler]]:
    """``(path, method, handler)`` of every route served for an ``--api`` choice."""
    table: list[tuple[str, str, Handler]] = [("/healthz", "GET", healthz), *sdk_support_routes()]
    for prefix in prefixes_for(api):
        table.extend(_code_routes(prefix))
    table += [
        ("/v1/keys", "POST", create_key),
        ("/v1/keys", "GET", keys_routes.list_keys),
        ("/v1/keys/{key_id}", "DELETE", keys_routes.revoke_key),
        ("/v1/keys/{key_id}/rotate", "POST", keys_routes.rotate_key),
        ("/v1/account/me", "GET", keys_routes.account_me),
    ]
    if files:
        for prefix in prefixes_for(api):
            table += _file_routes(prefix)
    return table


def _routes(config: ServerConfig) -> list[Route]:
    by_path: dict[str, dict[str, Handler]] = {}
    for path, method, handler in route_table(config.api, files=config.file_endpoints):
        scoped = (
            _owner_only(handler) if path.startswith("/v1/") and "{sandbox_id}" in path else handler
        )
        by_path.setdefault(path, {})[method] = scoped
    return [
        Route(path, _dispatch(handlers), methods=list(handlers))
        for path, handlers in by_path.items()
    ]


def _owner_only(handler: Handler) -> Handler:
    """The handler, answering 404 unless the caller owns the sandbox (or is an admin)."""

    async def scoped(request: Request) -> Response:
        _tenancy(request).check_sandbox(principal(request), request.path_params["sandbox_id"])
        return await handler(request)

    return scoped


def _dispatch(handlers: dict[str, Handler]) -> Handler:
    if len(handlers) == 1:
        return next(iter(handlers.values()))

    async def dispatch(request: Request) -> Response:
        return await handlers[request.method if request.method != "HEAD" else "GET"](request)

    return dispatch


def create_app(config: ServerConfig) -> Starlette:
    """The ASGI app; its lifespan starts and stops the `SandboxService`."""
    service = SandboxService(config)
    tenancy = Tenancy(service, admin_token=config.token, defaults=config.student_quotas)
    demoter = CpuDemoter(service, tenancy.owner_of)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        if config.cpu_demotion:
            demoter.start()
        try:
            yield
        finally:
            await demoter.stop()
            await service.stop()
            tenancy.close()

    dashboard = Dashboard(tenancy, demoter.niceness)
    app = Starlette(
        routes=[*_routes(config), *dashboard.routes()],
        lifespan=lifespan,
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.config = config
    app.state.service = service
    features = ServerFeatures(
        watch_max_ms=MAX_WATCH_MS if config.long_poll else None,
        files_max_bytes=config.max_file_bytes if config.file_endpoints else None,
    )
    app.state.tenancy = tenancy
    app.state.demoter = demoter
    app.state.kernel_starts = FairGate(max(2, os.cpu_count() or 1))
    app.add_middleware(
        _Gate,
        authenticate=tenancy.authenticate,
        throttle=tenancy.throttle,
        max_body_bytes=config.max_body_bytes,
        max_file_bytes=config.max_file_bytes,
        features=features,
    )
    return app
