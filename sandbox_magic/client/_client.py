"""`AsyncSandboxClient`: the wire contract over one pooled `httpx.AsyncClient`.

Every public method returns a typed record from `sandbox_magic.client._models` or raises a
`SandboxError` subclass; no httpx, json or parsing exception escapes. The API key lives
only inside a private `httpx.Auth` object and never appears in a repr, an error message
or a log line.

Retries (see `sandbox_magic.client._retry`): connection failures, timeouts, 502/503/504,
429 and replies cut short into invalid JSON are retried for requests that are safe to
repeat, which is all of them except
``restart`` and ``interrupt`` (those are repeated only when the request surely never
reached the server). Creating POSTs carry one ``Idempotency-Key`` per logical call, sent
unchanged on every retry, so a retried submit never creates a second run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import html
import json as jsonlib
import math
import re
import socket
import ssl
import threading
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterator,
    Mapping,
)
from types import TracebackType
from typing import Any, BinaryIO, Final, Self, TypeVar
from urllib.parse import quote

import httpx

from sandbox_magic import __version__
from sandbox_magic.client._errors import (
    ArtifactTooLargeError,
    InvalidRequestError,
    NotFoundError,
    SandboxAPIError,
    SandboxConnectionError,
    SandboxError,
    SandboxProtocolError,
    api_error_for_status,
)
from sandbox_magic.client._generation import (
    GENERATION_CHOICES,
    MACHINES_PREFIX,
    ApiGeneration,
    ServerFacts,
    runs_unavailable,
)
from sandbox_magic.client._models import Artifact, Context, Page, Run, Sandbox
from sandbox_magic.client._retry import Clock, RetryPolicy, Sleep, parse_retry_after, retry_async
from sandbox_magic.client._sse import read_events
from sandbox_magic.wire import FEATURES_HEADER, WATCH_MEDIA_TYPE, ServerFeatures

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "AsyncSandboxClient",
    "new_idempotency_key",
]

DEFAULT_CONNECT_TIMEOUT: Final = 5.0
DEFAULT_READ_TIMEOUT: Final = 30.0

#: Statuses worth another try: the gateway or service is briefly unavailable.
_RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
#: Of those, the ones that mean "not processed", safe to repeat even for unsafe requests.
_NOT_PROCESSED_STATUSES: Final = frozenset({429, 503})
_EXCERPT_CHARS: Final = 200
#: A held submit sent from the calling thread gives up (and leaves the run to the
#: event loop's path) once the server has been silent this much longer than the hold.
_BLOCKING_MARGIN: Final = 1.0

_T = TypeVar("_T")


class _BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <key>``; its repr never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key}"
        yield request

    def redact(self, text: str) -> str:
        """``text`` with any copy of the key replaced, in case a server echoes it."""
        return text.replace(self._key, "***") if self._key else text

    def __repr__(self) -> str:
        return "<BearerAuth key=***>"

    def __reduce__(self) -> Any:
        raise TypeError("the API key holder cannot be pickled")


def _display_url(base_url: str) -> str:
    """The base URL without credentials, query or fragment: safe to show anywhere."""
    url = httpx.URL(base_url)
    return str(url.copy_with(username=None, password=None, query=None, fragment=None)).rstrip("/")


def _segment(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return quote(value, safe="")


def _clean_params(params: Mapping[str, object | None]) -> dict[str, str]:
    return {k: str(v) for k, v in params.items() if v is not None}


def _excerpt(text: str) -> str:
    """A short, single-line, tag-free excerpt of a body (an HTML page's title if any)."""
    text = text[:20_000]
    title = re.search(r"<title[^>]*>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
    if title is None:
        title = re.search(r"<h1[^>]*>(.*?)</h1>", text, re.IGNORECASE | re.DOTALL)
    if title is not None:
        text = title.group(1)
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", text, flags=re.I | re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    text = " ".join(text.split())
    if len(text) > _EXCERPT_CHARS:
        text = text[: _EXCERPT_CHARS - 1].rstrip() + "…"
    return text


def _seconds(value: float | None) -> str:
    if value is None:
        return "the time limit"
    return f"{value:g} s"


class AsyncSandboxClient:
    """Async client of the sandbox code API; use as ``async with`` or call `aclose`.

    One instance keeps one connection pool: create it once per session and share it.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 20,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        api_generation: str = "auto",
        facts: ServerFacts | None = None,
    ) -> None:
        if api_generation not in GENERATION_CHOICES:
            raise ValueError(
                f"api_generation must be one of {', '.join(GENERATION_CHOICES)}, "
                f"got {api_generation!r}."
            )
        if not isinstance(base_url, str) or not re.match(r"^https?://[^/]", base_url.strip()):
            raise ValueError(
                "The sandbox server URL must start with http:// or https:// and name a host."
            )
        try:
            self._url = _display_url(base_url.strip())
        except httpx.InvalidURL as exc:
            raise ValueError(f"The sandbox server URL is not valid: {exc}") from None
        self._auth = _BearerAuth(api_key) if api_key else None
        self._retry = retry if retry is not None else RetryPolicy()
        self._sleep = sleep
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._closed = False
        self._facts = facts if facts is not None else ServerFacts()
        if api_generation in ("0", "1"):
            self._facts.generation = "1" if api_generation == "1" else "0"
            self._facts.forced = True
        self._probe_lock = asyncio.Lock()
        self._features = ServerFeatures()
        # Watches hold a connection each: leave at least half the pool for the rest.
        self._watch_slots = max(1, max_connections // 2)
        self._base = httpx.URL(base_url.strip()).copy_with(query=None, fragment=None)
        self._http = httpx.AsyncClient(
            base_url=self._base,
            auth=self._auth,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers=_default_headers(),
            transport=transport,
            follow_redirects=False,
        )
        # Held submits sent from a waiting cell's own thread (see `create_run_now`):
        # a small synchronous pool, made on first use, only over the real network.
        self._blocking_allowed = transport is None
        self._blocking_http: httpx.Client | None = None
        self._blocking_lock = threading.Lock()

    # -- identity -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server's URL, without credentials."""
        return self._url

    @property
    def has_api_key(self) -> bool:
        """Whether requests carry a bearer token (the token itself is never exposed)."""
        return self._auth is not None

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    @property
    def features(self) -> ServerFeatures:
        """What the server advertised beyond the plain contract (none until it answers)."""
        return self._features

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    @contextlib.contextmanager
    def watch_slot(self) -> Iterator[bool]:
        """Reserve one of the connections watches may hold; yields False when none is free."""
        if self._watch_slots <= 0:
            yield False
            return
        self._watch_slots -= 1
        try:
            yield True
        finally:
            self._watch_slots += 1

    def _learn(self, response: httpx.Response) -> None:
        advertised = response.headers.get(FEATURES_HEADER)
        if advertised is not None:
            self._features = ServerFeatures.parse(advertised)

    @property
    def is_closed(self) -> bool:
        return self._closed

    @property
    def facts(self) -> ServerFacts:
        """What is known of the server: API generation, async runs (shared per URL)."""
        return self._facts

    async def api_generation(self) -> ApiGeneration:
        """The server's API generation, probed once (``GET /v1/machines?limit=1``)."""
        if self._facts.generation is None:
            async with self._probe_lock:
                if self._facts.generation is None:
                    self._facts.generation = await self._probe()
        return self._facts.generation

    async def _probe(self) -> ApiGeneration:
        async def once(attempt: int) -> ApiGeneration:
            try:
                response = await self._http.get(MACHINES_PREFIX, params={"limit": "1"})
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            except RuntimeError as exc:
                raise self._closed_error(exc) from exc
            if response.status_code in (404, 405):
                return "0"
            self._check_status(response, "GET", MACHINES_PREFIX)
            try:
                body = response.json()
            except (ValueError, RecursionError):
                return "0"  # a catch-all page, not an API answer
            return "1" if isinstance(body, list | dict) else "0"

        return await self._with_retries(once, idempotent=True)

    def __repr__(self) -> str:
        return f"<AsyncSandboxClient base_url={self._url!r}>"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("AsyncSandboxClient cannot be pickled")

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool; later calls raise `SandboxConnectionError`."""
        self._closed = True
        with self._blocking_lock:
            blocking, self._blocking_http = self._blocking_http, None
        if blocking is not None:
            blocking.close()
        await self._http.aclose()

    # -- health ---------------------------------------------------------------------

    async def health(self) -> bool:
        """True when ``GET /healthz`` answers 2xx; never raises (one quick attempt)."""
        if self._closed:
            return False
        try:
            response = await self._http.get("/healthz")
        except Exception:
            return False
        return response.is_success

    async def health_details(self) -> dict[str, Any] | None:
        """The ``/healthz`` body (isolation, limits…), or None; never raises."""
        if self._closed:
            return None
        try:
            response = await self._http.get("/healthz")
            body = response.json() if response.is_success else None
        except Exception:
            return None
        return body if isinstance(body, dict) else None

    async def account(self) -> dict[str, Any] | None:
        """What the server says about the caller's key (``GET /v1/account/me``), if it can.

        The local server answers its name, role, quotas and usage; a server without the
        route gives None.
        """
        try:
            data = await self._json("GET", "/v1/account/me")
        except (NotFoundError, InvalidRequestError):
            return None
        return data if isinstance(data, dict) else None

    # -- sandboxes ------------------------------------------------------------------

    async def create_sandbox(
        self,
        *,
        template: str | None = None,
        timeout_ms: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        envs: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        internet_access: bool | None = None,
    ) -> Sandbox:
        body: dict[str, Any] = {}
        if template is not None:
            body["template"] = template
        if internet_access is not None:
            body["internet_access"] = internet_access
        if timeout_ms is not None:
            body["timeout_ms"] = timeout_ms
        if metadata is not None:
            body["metadata"] = dict(metadata)
        if envs is not None:
            body["envs"] = dict(envs)
        key = idempotency_key or new_idempotency_key()
        data = await self._json("POST", "/v1/sandboxes", json=body, idempotency_key=key)
        return self._parse(Sandbox.from_json, data, "sandbox")

    async def list_sandboxes(self) -> list[Sandbox]:
        data = await self._json("GET", "/v1/sandboxes")
        return [self._parse(Sandbox.from_json, item, path) for path, item in _items(data)]

    async def get_sandbox(self, sandbox_id: str) -> Sandbox:
        data = await self._json("GET", self._sandbox_path(sandbox_id))
        return self._parse(Sandbox.from_json, data, "sandbox")

    async def delete_sandbox(self, sandbox_id: str) -> None:
        await self._delete(self._sandbox_path(sandbox_id))

    # -- contexts -------------------------------------------------------------------

    async def create_context(
        self,
        sandbox_id: str,
        *,
        language: str | None = None,
        cwd: str | None = None,
        idempotency_key: str | None = None,
    ) -> Context:
        body = {k: v for k, v in {"language": language, "cwd": cwd}.items() if v is not None}
        data = await self._json(
            "POST",
            f"{self._sandbox_path(sandbox_id)}/code/contexts",
            json=body,
            idempotency_key=idempotency_key or new_idempotency_key(),
        )
        return self._parse(Context.from_json, data, "context")

    async def list_contexts(self, sandbox_id: str) -> list[Context]:
        data = await self._json("GET", f"{self._sandbox_path(sandbox_id)}/code/contexts")
        return [self._parse(Context.from_json, item, path) for path, item in _items(data)]

    async def delete_context(self, sandbox_id: str, context_id: str) -> None:
        await self._delete(self._context_path(sandbox_id, context_id))

    async def restart_context(self, sandbox_id: str, context_id: str) -> None:
        """Restart the context's kernel: its variables are lost."""
        await self._request(
            "POST", f"{self._context_path(sandbox_id, context_id)}/restart", idempotent=False
        )

    async def interrupt_context(self, sandbox_id: str, context_id: str) -> None:
        """Interrupt whatever the context is running (like a notebook's stop button)."""
        await self._request(
            "POST", f"{self._context_path(sandbox_id, context_id)}/interrupt", idempotent=False
        )

    # -- runs -----------------------------------------------------------------------

    async def create_run(
        self,
        sandbox_id: str,
        *,
        code: str,
        context_id: str,
        envs: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the run's server-side limit)
        idempotency_key: str | None = None,
        settle: float | None = None,
        on_created: Callable[[Run], None] | None = None,
    ) -> Run:
        """Submit code to run asynchronously; returns at once (status usually ``queued``).

        ``timeout`` is in seconds (sent rounded up to a whole second). ``settle`` (for
        servers whose `features` can watch runs) lets the server hold its answer until
        the run has ended or shown output, at most that many seconds: a short run is
        then complete in the answer. ``on_created`` is called with the run as soon as
        the server has made it, which for a held answer is before the run settles.
        """
        body = _run_body(code, context_id, envs, timeout)
        path = f"{self._sandbox_path(sandbox_id)}/code/runs"
        key = idempotency_key or new_idempotency_key()
        if settle:
            return await self._create_settled(path, body, key, settle, on_created)
        data = await self._json("POST", path, json=body, idempotency_key=key)
        run = self._parse(Run.from_json, data, "run")
        if on_created is not None:
            on_created(run)
        return run

    async def _create_settled(
        self,
        path: str,
        body: dict[str, Any],
        key: str,
        settle: float,
        on_created: Callable[[Run], None] | None,
    ) -> Run:
        """A held submit: ``?wait_ms=`` with the run's snapshots as NDJSON lines.

        Our server sends the created run at once and the settled one later, so the run
        is known even if the answer breaks off while held (it is then followed like
        any other run). A server that answers plain JSON gives the one snapshot.
        """
        path = await self._spelled(path)
        params = {"wait_ms": str(max(1, int(settle * 1000)))}
        headers = {"Idempotency-Key": key, "Accept": f"{WATCH_MEDIA_TYPE}, application/json"}
        timeout = httpx.Timeout(self._read_timeout + settle, connect=self._connect_timeout)

        async def once(attempt: int) -> Run:
            latest: Run | None = None
            try:
                async with self._http.stream(
                    "POST", path, json=body, params=params, headers=headers, timeout=timeout
                ) as response:
                    self._learn(response)
                    if not response.is_success:
                        await response.aread()
                        self._check_status(response, "POST", path)
                    media_type = response.headers.get("content-type", "").split(";")[0].strip()
                    if media_type != WATCH_MEDIA_TYPE:
                        await response.aread()
                        run = self._parse(Run.from_json, self._decode(response), "run")
                        if on_created is not None:
                            on_created(run)
                        return run
                    async for line in response.aiter_lines():
                        latest = self._settled_line(line, latest, on_created)
            except (httpx.HTTPError, SandboxConnectionError) as exc:
                if latest is not None:
                    return latest  # created: whoever follows the run takes it from here
                if isinstance(exc, SandboxConnectionError):
                    raise
                raise self._transport_error(exc) from exc
            except RuntimeError as exc:
                raise self._closed_error(exc) from exc
            if latest is None:
                raise _GarbledReply(
                    f"The sandbox server at {self._url} answered a run submission without the run."
                )
            return latest

        return await self._with_retries(once, idempotent=True)

    def _settled_line(
        self, line: str, latest: Run | None, on_created: Callable[[Run], None] | None
    ) -> Run | None:
        """One line of a held submit's answer: the newest snapshot of the run."""
        if not line.strip():
            return latest
        run = self._watch_line(line)[1]
        if latest is None and on_created is not None:
            on_created(run)  # the first line: the run as made
        return run

    def create_run_now(
        self,
        sandbox_id: str,
        *,
        code: str,
        context_id: str,
        idempotency_key: str,
        settle: float,
        envs: Mapping[str, str] | None = None,
        timeout: float | None = None,  # the run's server-side limit
        on_created: Callable[[Run], None] | None = None,
    ) -> Run | None:
        """A held `create_run`, sent from the calling thread rather than the event loop.

        A cell waiting for its own short run is quicker this way (no hops between
        threads, no asyncio machinery: a few milliseconds a cell). Only the plain case
        is handled: None comes back (the run perhaps made) when this client has a
        custom transport, the server's API generation is not known yet, or the answer
        is anything but a clean held one. The caller then sends the same request with
        the same ``idempotency_key`` through `create_run`, which gives back that run or
        the worded error. ``KeyboardInterrupt`` is left to the caller; ``on_created``
        has then been called if the run was made.
        """
        if not self._blocking_allowed or self._closed or self._facts.generation is None:
            return None
        body = _run_body(code, context_id, envs, timeout)
        path = self._facts.path(f"{self._sandbox_path(sandbox_id)}/code/runs")
        params = {"wait_ms": str(max(1, int(settle * 1000)))}
        headers = {"Idempotency-Key": idempotency_key, "Accept": WATCH_MEDIA_TYPE}
        wait = httpx.Timeout(settle + _BLOCKING_MARGIN, connect=_BLOCKING_MARGIN)
        latest: Run | None = None
        try:
            with self._blocking_client().stream(
                "POST", path, json=body, params=params, headers=headers, timeout=wait
            ) as response:
                self._learn(response)
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                if response.status_code != 202 or media_type != WATCH_MEDIA_TYPE:
                    return None
                for line in response.iter_lines():
                    latest = self._settled_line(line, latest, on_created)
        except (httpx.HTTPError, SandboxError, RuntimeError):
            return latest  # once made, the run is followed like any other
        return latest

    def _blocking_client(self) -> httpx.Client:
        with self._blocking_lock:
            if self._closed:
                raise SandboxConnectionError(self._url, "this client has been closed")
            if self._blocking_http is None:
                self._blocking_http = httpx.Client(
                    base_url=self._base,
                    auth=self._auth,
                    limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
                    headers=_default_headers(),
                    follow_redirects=False,
                )
            return self._blocking_http

    async def get_run(self, sandbox_id: str, run_id: str) -> Run:
        data = await self._json("GET", self._run_path(sandbox_id, run_id))
        return self._parse(Run.from_json, data, "run")

    async def watch_run(
        self,
        sandbox_id: str,
        run_id: str,
        *,
        wait: float,
        after_version: int | None = None,
    ) -> AsyncGenerator[tuple[int, Run]]:
        """Snapshots ``(version, run)`` of a run, each as soon as the run changes.

        One request, held open by the server for up to ``wait`` seconds (see
        `sandbox_magic.wire`); it ends after the terminal snapshot or when the
        wait passes. Not retried: the caller asks again with the last version. A server
        that answers a plain snapshot instead gives that one (version 0) and is no
        longer asked to watch.
        """
        path = await self._spelled(self._run_path(sandbox_id, run_id))
        params = {"watch_ms": str(max(1, int(wait * 1000)))}
        if after_version is not None:
            params["after_version"] = str(after_version)
        timeout = httpx.Timeout(self._read_timeout + wait, connect=self._connect_timeout)
        if self._closed:
            raise SandboxConnectionError(self._url, "this client has been closed")
        try:
            async with self._http.stream("GET", path, params=params, timeout=timeout) as response:
                self._learn(response)
                if not response.is_success:
                    await response.aread()
                    self._check_status(response, "GET", path)
                media_type = response.headers.get("content-type", "").split(";")[0].strip()
                if media_type != WATCH_MEDIA_TYPE:
                    await response.aread()
                    self._features = dataclasses.replace(self._features, watch_max_ms=None)
                    yield 0, self._parse(Run.from_json, self._decode(response), "run")
                    return
                async for line in response.aiter_lines():
                    if line.strip():
                        yield self._watch_line(line)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        except RuntimeError as exc:
            raise self._closed_error(exc) from exc

    def _watch_line(self, line: str) -> tuple[int, Run]:
        try:
            data = jsonlib.loads(line)
        except (ValueError, RecursionError):
            # A line cut short: the answer broke off on the way (asked again).
            raise SandboxConnectionError(self._url, "a run watch answer was cut short") from None
        version = data.get("version") if isinstance(data, dict) else None
        if type(version) is not int or version < 0:
            raise SandboxProtocolError(
                f"Malformed reply from the sandbox server at {self._url}: a line of a run "
                "watch is not a versioned snapshot."
            )
        return version, self._parse(Run.from_json, data.get("run"), "run")

    async def list_runs(
        self,
        sandbox_id: str,
        *,
        status: str | None = None,
        context_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Run]:
        params = _clean_params(
            {"status": status, "context_id": context_id, "limit": limit, "cursor": cursor}
        )
        data = await self._json("GET", f"{self._sandbox_path(sandbox_id)}/code/runs", params=params)
        return self._page(Run.from_json, data, "runs")

    async def cancel_run(self, sandbox_id: str, run_id: str) -> Run:
        """Ask the server to stop a run; returns the run as the server then sees it."""
        data = await self._json("POST", f"{self._run_path(sandbox_id, run_id)}/cancel")
        return self._parse(Run.from_json, data, "run")

    # -- streaming execution --------------------------------------------------------

    async def execute_stream(
        self,
        sandbox_id: str,
        *,
        code: str,
        context_id: str | None = None,
        language: str | None = None,
        envs: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (the execution's server-side limit)
    ) -> AsyncIterator[dict[str, Any]]:
        """Run code synchronously on the server, yielding its events as they arrive.

        ``POST .../code/execute`` answers with server-sent events (``stdout``,
        ``stderr``, ``result``, ``error``, ``artifact``, ``number_of_executions``).
        Not retried once sent (an execution is not idempotent); there is no read
        timeout between events, so bound the whole stream from the caller.
        """
        body: dict[str, Any] = {"code": code}
        if context_id is not None:
            _segment(context_id, "context_id")
            body["context_id"] = context_id
        if language is not None:
            body["language"] = language
        if envs:
            body["envs"] = dict(envs)
        if timeout is not None:
            body["timeout"] = max(1, math.ceil(timeout))
        if self._closed:
            raise SandboxConnectionError(self._url, "this client has been closed")
        path = await self._spelled(f"{self._sandbox_path(sandbox_id)}/code/execute")
        stream_timeout = httpx.Timeout(None, connect=self._connect_timeout)
        try:
            async with self._http.stream(
                "POST",
                path,
                json=body,
                timeout=stream_timeout,
                headers={"Accept": "text/event-stream"},
            ) as response:
                if not response.is_success:
                    await response.aread()
                    self._check_status(response, "POST", path)
                async for event in read_events(response.aiter_lines()):
                    yield event
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        except RuntimeError as exc:
            raise self._closed_error(exc) from exc

    # -- artifacts ------------------------------------------------------------------

    async def list_artifacts(
        self,
        sandbox_id: str,
        *,
        context_id: str | None = None,
        execution_count: int | None = None,
        kind: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Artifact]:
        params = _clean_params(
            {
                "context_id": context_id,
                "execution_count": execution_count,
                "kind": kind,
                "limit": limit,
                "cursor": cursor,
            }
        )
        data = await self._json(
            "GET", f"{self._sandbox_path(sandbox_id)}/code/artifacts", params=params
        )
        return self._page(Artifact.from_json, data, "artifacts")

    async def get_artifact(self, sandbox_id: str, artifact_id: str) -> Artifact:
        data = await self._json("GET", self._artifact_path(sandbox_id, artifact_id))
        return self._parse(Artifact.from_json, data, "artifact")

    async def download_artifact(
        self, sandbox_id: str, artifact_id: str, *, max_bytes: int | None = None
    ) -> bytes:
        """The artifact's bytes, streamed; `ArtifactTooLargeError` past ``max_bytes``."""
        path = f"{self._artifact_path(sandbox_id, artifact_id)}/download"
        content, _ = await self._download(path, artifact_id, max_bytes)
        return content

    async def download_artifact_to(
        self, sandbox_id: str, artifact_id: str, target: BinaryIO, *, max_bytes: int | None = None
    ) -> int:
        """Stream the artifact's bytes into ``target`` (a seekable binary file), never
        holding it whole in memory; returns the byte count. A retried download starts
        ``target`` over. `ArtifactTooLargeError` past ``max_bytes``."""
        path = f"{self._artifact_path(sandbox_id, artifact_id)}/download"
        written = 0

        def restart() -> None:
            nonlocal written
            target.seek(0)
            target.truncate()
            written = 0

        def write(chunk: bytes) -> None:
            nonlocal written
            target.write(chunk)
            written += len(chunk)

        await self._stream(path, artifact_id, max_bytes, restart, write)
        return written

    async def preview_artifact(
        self, sandbox_id: str, artifact_id: str, *, max_bytes: int | None = None
    ) -> tuple[bytes, str]:
        """A preview's bytes and its content type (``application/octet-stream`` if unsaid)."""
        path = f"{self._artifact_path(sandbox_id, artifact_id)}/preview"
        return await self._download(path, artifact_id, max_bytes)

    async def delete_artifact(self, sandbox_id: str, artifact_id: str) -> None:
        await self._delete(self._artifact_path(sandbox_id, artifact_id))

    # -- raw files (servers whose `features` have them) -----------------------------

    async def put_file(self, sandbox_id: str, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` in the sandbox (``PUT .../file?path=``)."""
        await self._request(
            "PUT",
            f"{self._sandbox_path(sandbox_id)}/file",
            params={"path": path},
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    async def get_file(self, sandbox_id: str, path: str, *, max_bytes: int | None = None) -> bytes:
        """The bytes of ``path`` in the sandbox; `SandboxError` past ``max_bytes``."""

        def too_large(size: int | None) -> SandboxError:
            actual = f"{size} bytes" if size is not None else "more than that"
            return SandboxError(
                f"The sandbox file {path!r} is too large to fetch: the limit is "
                f"{max_bytes} bytes, it has {actual}."
            )

        chunks: list[bytes] = []
        await self._stream(
            f"{self._sandbox_path(sandbox_id)}/file",
            path,
            max_bytes,
            chunks.clear,
            chunks.append,
            params={"path": path},
            too_large=too_large,
        )
        return b"".join(chunks)

    # -- paths ----------------------------------------------------------------------

    @staticmethod
    def _sandbox_path(sandbox_id: str) -> str:
        return f"/v1/sandboxes/{_segment(sandbox_id, 'sandbox_id')}"

    def _context_path(self, sandbox_id: str, context_id: str) -> str:
        context = _segment(context_id, "context_id")
        return f"{self._sandbox_path(sandbox_id)}/code/contexts/{context}"

    def _run_path(self, sandbox_id: str, run_id: str) -> str:
        return f"{self._sandbox_path(sandbox_id)}/code/runs/{_segment(run_id, 'run_id')}"

    def _artifact_path(self, sandbox_id: str, artifact_id: str) -> str:
        artifact = _segment(artifact_id, "artifact_id")
        return f"{self._sandbox_path(sandbox_id)}/code/artifacts/{artifact}"

    # -- transport ------------------------------------------------------------------

    async def _json(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        # Decoding is part of each attempt: a body cut short or garbled on the way is
        # asked for again, like a dropped connection (every JSON call is safe to repeat:
        # creating calls carry their Idempotency-Key).
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}

        async def once(attempt: int) -> Any:
            response = await self._send_once(
                method, path, json=json, params=params, headers=headers
            )
            return self._decode(response)

        return await self._with_retries(once, idempotent=True)

    async def _delete(self, path: str) -> None:
        async def once(attempt: int) -> None:
            try:
                await self._send_once("DELETE", path)
            except NotFoundError:
                # An earlier attempt may have deleted it and lost the answer.
                if attempt == 1:
                    raise

        await self._with_retries(once, idempotent=True)

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        idempotent: bool = True,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        # A creating call's key is chosen once per logical call and sent on every retry.
        sent = dict(headers or {})
        if idempotency_key:
            sent["Idempotency-Key"] = idempotency_key

        async def once(attempt: int) -> httpx.Response:
            return await self._send_once(
                method, path, json=json, params=params, headers=sent, content=content
            )

        return await self._with_retries(once, idempotent=idempotent)

    async def _with_retries(self, once: Callable[[int], Awaitable[_T]], *, idempotent: bool) -> _T:
        if self._closed:
            raise SandboxConnectionError(self._url, "this client has been closed")

        def should_retry(exc: SandboxError) -> bool:
            return self._should_retry(exc, idempotent=idempotent)

        return await retry_async(
            once,
            policy=self._retry,
            should_retry=should_retry,
            sleep=self._sleep,
            clock=self._clock,
        )

    @staticmethod
    def _should_retry(exc: SandboxError, *, idempotent: bool) -> bool:
        if isinstance(exc, SandboxConnectionError):
            cause = exc.__cause__
            not_sent = isinstance(cause, httpx.ConnectError | httpx.ConnectTimeout)
            return idempotent or not_sent
        if isinstance(exc, SandboxAPIError):
            if exc.retryable is False or runs_unavailable(exc):
                return False
            if exc.status_code in _RETRY_STATUSES:
                return idempotent or exc.status_code in _NOT_PROCESSED_STATUSES
            return exc.retryable is True and idempotent
        return isinstance(exc, _GarbledReply) and idempotent

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        path = await self._spelled(path)
        try:
            response = await self._http.request(
                method, path, json=json, params=params, headers=headers, content=content
            )
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        except RuntimeError as exc:  # httpx refuses to send on a closed client
            raise self._closed_error(exc) from exc
        self._learn(response)
        self._check_status(response, method, path)
        return response

    async def _download(
        self, path: str, artifact_id: str, max_bytes: int | None
    ) -> tuple[bytes, str]:
        chunks: list[bytes] = []
        content_type = await self._stream(path, artifact_id, max_bytes, chunks.clear, chunks.append)
        return b"".join(chunks), content_type

    async def _stream(
        self,
        path: str,
        artifact_id: str,
        max_bytes: int | None,
        restart: Callable[[], None],
        write: Callable[[bytes], None],
        *,
        params: Mapping[str, str] | None = None,
        too_large: Callable[[int | None], SandboxError] | None = None,
    ) -> str:
        """GET ``path`` chunk by chunk into ``write`` (after ``restart`` on every
        attempt); returns the content type. Past ``max_bytes``, ``too_large(size)``
        (by default `ArtifactTooLargeError` naming ``artifact_id``)."""

        def refuse(size: int | None) -> SandboxError:
            if too_large is not None:
                return too_large(size)
            return ArtifactTooLargeError(artifact_id, max_bytes or 0, size)

        path = await self._spelled(path)

        async def once(attempt: int) -> str:
            restart()
            try:
                async with self._http.stream("GET", path, params=params) as response:
                    self._learn(response)
                    if not response.is_success:
                        await response.aread()
                        self._check_status(response, "GET", path)
                    return await self._read_limited(response, max_bytes, write, refuse)
            except httpx.HTTPError as exc:
                raise self._transport_error(exc) from exc
            except RuntimeError as exc:
                raise self._closed_error(exc) from exc

        return await self._with_retries(once, idempotent=True)

    async def _spelled(self, path: str) -> str:
        """The 0.x-form path as this server spells it (probing its generation once)."""
        if path.startswith("/v1/") and self._facts.generation is None:
            await self.api_generation()
        return self._facts.path(path)

    def _closed_error(self, exc: RuntimeError) -> SandboxConnectionError:
        if self._closed or self._http.is_closed:
            return SandboxConnectionError(self._url, "this client has been closed")
        return SandboxConnectionError(self._url, f"the request failed ({type(exc).__name__})")

    @staticmethod
    async def _read_limited(
        response: httpx.Response,
        max_bytes: int | None,
        write: Callable[[bytes], None],
        too_large: Callable[[int | None], SandboxError],
    ) -> str:
        content_type = response.headers.get("content-type") or "application/octet-stream"
        if max_bytes is not None:
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise too_large(int(declared))
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise too_large(None)
            write(chunk)
        return content_type

    # -- answers --------------------------------------------------------------------

    def _check_status(self, response: httpx.Response, method: str, path: str) -> None:
        if response.is_success:
            return
        if response.status_code < 400:
            raise SandboxProtocolError(
                f"The sandbox server at {self._url} answered {method} {path} with an "
                f"unexpected HTTP {response.status_code}"
                + (
                    f" (redirect to {response.headers['location']})"
                    if "location" in response.headers
                    else ""
                )
                + "."
            )
        raise self._api_error(response)

    def _api_error(self, response: httpx.Response) -> SandboxAPIError:
        """Read either error shape of the contract, or any other body, into an error."""
        message: str | None = None
        code: str | None = None
        request_id: str | None = None
        retryable: bool | None = None
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        if isinstance(body, Mapping):
            error = body.get("error")
            if isinstance(error, Mapping):
                message = _str_or_none(error.get("message"))
                code = _str_or_none(error.get("code"))
                request_id = _str_or_none(error.get("request_id"))
                flag = error.get("retryable")
                retryable = flag if isinstance(flag, bool) else None
            elif isinstance(error, str):
                message = error or None
            message = message or _str_or_none(body.get("message")) or _detail(body)
            code = code or _str_or_none(body.get("code"))
            request_id = request_id or _str_or_none(body.get("request_id"))
        request_id = request_id or response.headers.get("x-request-id")
        code = code.lower() if code else None  # 1.x has upper-case codes (QUOTA_EXCEEDED)
        if message is None:
            excerpt = _excerpt(_safe_text(response))
            reason = response.reason_phrase or "error"
            message = f"The sandbox server at {self._url} answered {response.status_code} {reason}"
            if excerpt:
                message += f": {excerpt}"
        if len(message) > 2 * _EXCERPT_CHARS:
            message = message[: 2 * _EXCERPT_CHARS - 1] + "…"
        if self._auth is not None:
            message = self._auth.redact(message)
        return api_error_for_status(
            response.status_code,
            message,
            code=code,
            request_id=request_id,
            retryable=retryable,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

    def _transport_error(self, exc: httpx.HTTPError) -> SandboxError:
        """A user-worded error for a failure below HTTP (no credentials in it)."""
        detail: str
        if isinstance(exc, httpx.ConnectTimeout):
            detail = f"timed out after {_seconds(self._connect_timeout)} while connecting"
        elif isinstance(exc, httpx.ReadTimeout):
            detail = f"timed out after {_seconds(self._read_timeout)} waiting for an answer"
        elif isinstance(exc, httpx.WriteTimeout):
            detail = f"timed out after {_seconds(self._read_timeout)} sending the request"
        elif isinstance(exc, httpx.PoolTimeout):
            detail = "no free connection in the pool (too many requests at once)"
        elif isinstance(exc, httpx.ConnectError):
            detail = _connect_detail(exc)
        elif isinstance(exc, httpx.RemoteProtocolError):
            detail = "the connection was closed before a complete answer arrived"
        elif isinstance(exc, httpx.ReadError | httpx.WriteError):
            detail = "the connection broke during the request"
        elif isinstance(exc, httpx.UnsupportedProtocol):
            detail = "the URL's scheme is not supported (use http:// or https://)"
        elif isinstance(exc, httpx.ProxyError):
            detail = "the HTTP proxy refused or failed the connection"
        elif isinstance(exc, httpx.DecodingError):
            return SandboxProtocolError(
                f"The sandbox server at {self._url} sent a body that could not be decoded."
            )
        elif isinstance(exc, httpx.TooManyRedirects):
            return SandboxProtocolError(f"The sandbox server at {self._url} redirected too often.")
        else:
            detail = f"the request failed ({type(exc).__name__})"
        return SandboxConnectionError(self._url, detail)

    def _decode(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested absurdly deep
            text = _safe_text(response)
            if text.lstrip()[:1] in ("{", "["):
                # Broken JSON: an excerpt would only repeat its start, which can hold
                # remote output (and secrets printed by the code) in an error message.
                shown = f"{len(response.content)} bytes, cut short or garbled"
            else:
                shown = _excerpt(text)
            if self._auth is not None:
                shown = self._auth.redact(shown)
            raise _GarbledReply(
                f"The sandbox server at {self._url} sent a reply that is not valid JSON "
                f"(HTTP {response.status_code}" + (f": {shown!r}" if shown else "") + ")."
            ) from None

    def _parse(self, parse: Callable[[Any, str], _T], data: Any, path: str) -> _T:
        try:
            return parse(data, path)
        except SandboxError:
            raise
        except Exception as exc:  # a parser bug must still surface as a protocol error
            raise SandboxProtocolError(
                f"Malformed reply from the sandbox server: could not read {path} "
                f"({type(exc).__name__})."
            ) from exc

    def _page(self, parse: Callable[[Any, str], _T], data: Any, what: str) -> Page[_T]:
        items = [self._parse(parse, item, path) for path, item in _items(data, what)]
        return Page(tuple(items), _next_cursor(data))


class _GarbledReply(SandboxProtocolError):
    """A reply body that is not JSON at all: likely damaged on the way, worth a retry."""


def _items(data: Any, what: str = "items") -> list[tuple[str, Any]]:
    """The elements of a listing: a bare JSON array or ``{"items": [...]}``."""
    if isinstance(data, Mapping) and "items" in data:
        data = data["items"]
        what = f"{what}.items"
    if not isinstance(data, list):
        got = "nothing" if data is None else type(data).__name__
        raise SandboxProtocolError(
            f"Malformed reply from the sandbox server: {what} should be a list, got {got}."
        )
    return [(f"{what}[{i}]", item) for i, item in enumerate(data)]


def _next_cursor(data: Any) -> str | None:
    """The next page's cursor: ``next_cursor``, or 1.x ``next_token`` (unless not ``has_next``)."""
    if not isinstance(data, Mapping):
        return None
    cursor = data.get("next_cursor")
    if cursor is None and data.get("has_next") is not False:
        cursor = data.get("next_token")
    return cursor if isinstance(cursor, str) and cursor else None


def new_idempotency_key() -> str:
    """A fresh ``Idempotency-Key`` for one logical request."""
    return str(uuid.uuid4())


def _default_headers() -> dict[str, str]:
    return {"User-Agent": f"sandbox-magic/{__version__}", "Accept": "application/json"}


def _run_body(
    code: str, context_id: str, envs: Mapping[str, str] | None, timeout: float | None
) -> dict[str, Any]:
    """The body of a run submission (``timeout`` rounded up to whole seconds)."""
    _segment(context_id, "context_id")
    body: dict[str, Any] = {"code": code, "context_id": context_id}
    if envs is not None:
        body["envs"] = dict(envs)
    if timeout is not None:
        body["timeout"] = max(1, math.ceil(timeout))
    return body


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _detail(body: Mapping[str, Any]) -> str | None:
    """Starlette/FastAPI style ``{"detail": ...}`` bodies."""
    detail = body.get("detail")
    if isinstance(detail, str) and detail:
        return detail
    return None


def _safe_text(response: httpx.Response) -> str:
    try:
        return response.text
    except Exception:
        return response.content.decode("utf-8", "replace")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (httpx/anyio wrap the OS error a few levels deep)."""
    found: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in found and len(found) < 10:
        found.append(current)
        current = current.__cause__ or current.__context__
    return found


def _connect_detail(exc: httpx.ConnectError) -> str:
    chain = _chain(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return "connection refused"
    if any(isinstance(e, socket.gaierror) for e in chain):
        return "host name not found"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "TLS handshake failed (certificate or protocol problem)"
    lowered = " ".join(str(e) for e in chain).lower()
    if "refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host name not found"
    if "temporary failure in name resolution" in lowered or "getaddrinfo" in lowered:
        return "host name could not be resolved"
    if "ssl" in lowered or "certificate" in lowered:
        return "TLS handshake failed (certificate or protocol problem)"
    if "unreachable" in lowered:
        return "network unreachable"
    return "could not connect"
