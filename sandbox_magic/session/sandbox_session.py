"""Which server, which sandbox and which contexts one notebook kernel uses.

A session connects lazily: the first run resolves the server (a configured URL, or
the embedded local server), creates a sandbox unless one was named, and creates a
code context per ``--context`` name. All methods are coroutines for the I/O loop.
Nothing here imports IPython.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from sandbox_magic.client import (
    SUBMIT_SETTLE,
    AsyncSandboxClient,
    Context,
    NotFoundError,
    PollPolicy,
    Run,
    SandboxAPIError,
    SandboxError,
    follow_run,
    new_idempotency_key,
    run_deadline,
)
from sandbox_magic.client._generation import ServerFacts, ServerFactsBook, runs_unavailable
from sandbox_magic.client._streamed import StreamFold
from sandbox_magic.session.embedded import EmbeddedServer
from sandbox_magic.session.journal import Journal, JournalEntry

__all__ = [
    "ConnectionSettings",
    "NoServerError",
    "RunRequest",
    "RunsUnavailableError",
    "SandboxSession",
    "display_url",
]

DEFAULT_CONTEXT = "default"


class NoServerError(SandboxError):
    """No server URL is configured and the embedded server is turned off."""


def display_url(url: str) -> str:
    """The URL without any user:password part, safe to show."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "<invalid URL>"
    return str(parsed.copy_with(userinfo=b"")) if parsed.userinfo else url


@functools.lru_cache(maxsize=8)
def _shown_url(url: str) -> str:
    """`display_url`, remembered: a session shows its URL on every run."""
    return display_url(url)


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect; the key is kept out of the repr."""

    api_url: str | None
    api_key: str | None = field(default=None, repr=False)
    template: str | None = "code-interpreter"
    #: Asked for when creating a sandbox; None: the server's default.
    internet_access: bool | None = None
    embedded: bool = True
    embedded_state_dir: Path | None = None
    request_timeout: float = 30.0
    #: ``auto`` (probe once per server), ``0`` (/v1/sandboxes) or ``1`` (/v1/machines).
    api_generation: str = "auto"
    #: Where the URL and the key were read from, in words (never the key itself).
    url_source: str = ""
    key_source: str = ""


@dataclass(frozen=True, slots=True)
class ContextKey:
    """A context as the user names it, with its language."""

    name: str
    language: str | None


@dataclass(frozen=True)
class RunRequest:
    """One run to submit, with the key that makes sending it twice create it once."""

    code: str
    context: str = DEFAULT_CONTEXT
    language: str | None = None
    #: A sandbox named by the user; None: the session's own.
    sandbox: str | None = None
    envs: dict[str, str] | None = field(default=None, repr=False)
    run_timeout: int | None = None
    idempotency_key: str = field(default_factory=new_idempotency_key)


class _MadeRun:
    """Catches the run a submit made, passing it on at once.

    The journal is written only once the submit has answered: on a small machine,
    writing it while the kernel runs the code delays that code.
    """

    def __init__(self, then: Callable[[Run], None] | None) -> None:
        self.run: Run | None = None
        self._then = then

    def __call__(self, run: Run) -> None:
        if self.run is None:
            self.run = run
            if self._then is not None:
                self._then(run)


class RunsUnavailableError(SandboxError):
    """The server offers no async runs: the cell must be streamed instead."""


def _make_client(
    url: str, key: str | None, read_timeout: float, generation: str, facts: ServerFacts
) -> AsyncSandboxClient:
    try:
        return AsyncSandboxClient(
            url, key, read_timeout=read_timeout, api_generation=generation, facts=facts
        )
    except ValueError as exc:
        raise SandboxError(f"{exc} (got {display_url(url)!r})") from None


class SandboxSession:
    """The connection, sandbox and contexts of one notebook kernel."""

    def __init__(
        self,
        settings: ConnectionSettings,
        journal: Journal | None = None,
        facts_book: ServerFactsBook | None = None,
    ) -> None:
        self.settings = settings
        self.journal = journal
        self.facts_book = facts_book if facts_book is not None else ServerFactsBook()
        self.embedded: EmbeddedServer | None = None
        self._client: AsyncSandboxClient | None = None
        self._url: str | None = None
        self.sandbox_id: str | None = None
        self.created_sandbox: bool = False
        self._contexts: dict[tuple[str, ContextKey], Context] = {}
        self._lock = asyncio.Lock()
        self.notices: list[str] = []

    def __repr__(self) -> str:
        return f"SandboxSession(url={self.url!r}, sandbox_id={self.sandbox_id!r})"

    @property
    def url(self) -> str | None:
        """The server's URL (without credentials), once connected."""
        return _shown_url(self._url) if self._url else None

    @property
    def is_embedded(self) -> bool:
        """True when this session uses the embedded local server."""
        return self.embedded is not None

    async def client(self) -> AsyncSandboxClient:
        """The HTTP client, connecting (and starting the embedded server) on first use."""
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()
            return self._client

    async def _connect(self) -> AsyncSandboxClient:
        settings = self.settings
        if settings.api_url:
            client = self._new_client(settings.api_url, settings.api_key)
            self._url = settings.api_url
            return client
        if not settings.embedded:
            raise NoServerError(
                "No sandbox server is configured. Set NULLSPACE_API_URL (and "
                "NULLSPACE_API_KEY), or turn the embedded local server back on."
            )
        server = EmbeddedServer()
        self.embedded = server  # known before it starts, so close() can stop it
        try:
            url = await asyncio.to_thread(server.start, settings.embedded_state_dir)
        except BaseException:
            self.embedded = None
            raise
        self._url = url
        self.notices.append(
            f"Started the embedded local sandbox server at {url} "
            "(code runs on this machine, as you)."
        )
        return self._new_client(url, server.token)

    def _new_client(self, url: str, key: str | None) -> AsyncSandboxClient:
        facts = self.facts_book.facts(display_url(url))
        return _make_client(
            url, key, self.settings.request_timeout, self.settings.api_generation, facts
        )

    @property
    def facts(self) -> ServerFacts | None:
        """What is known of the connected server (API generation, async runs)."""
        return self._client.facts if self._client is not None else None

    @property
    def streams(self) -> bool:
        """True when the server is known to have no async runs (cells are streamed)."""
        return self.facts is not None and self.facts.async_runs is False

    async def ensure_sandbox(self, requested: str | None = None) -> str:
        """The sandbox to run in: the one named, or the session's own (created once)."""
        client = await self.client()
        if requested:
            await client.get_sandbox(requested)
            return requested
        if self.sandbox_id is None:
            sandbox = await client.create_sandbox(
                template=self.settings.template, internet_access=self.settings.internet_access
            )
            self.sandbox_id = sandbox.id
            self.created_sandbox = True
        return self.sandbox_id

    async def ensure_context(
        self, sandbox_id: str, name: str = DEFAULT_CONTEXT, language: str | None = None
    ) -> Context:
        """The context called ``name`` in a sandbox, created on first use."""
        key = (sandbox_id, ContextKey(name, language))
        if (context := self._contexts.get(key)) is None:
            client = await self.client()
            context = await client.create_context(sandbox_id, language=language)
            self._contexts[key] = context
        return context

    def context_name(self, sandbox_id: str, context_id: str) -> str | None:
        """The user's name for a context id, if this session created it."""
        for (sandbox, key), context in self._contexts.items():
            if sandbox == sandbox_id and context.id == context_id:
                return key.name
        return None

    def known_contexts(self) -> list[tuple[str, str, Context]]:
        """(sandbox id, name, context) for every context this session created."""
        return [(sb, key.name, ctx) for (sb, key), ctx in self._contexts.items()]

    async def submit(
        self,
        request: RunRequest,
        *,
        record: bool = True,
        on_created: Callable[[Run], None] | None = None,
    ) -> Run:
        """Submit code as an async run; recreates a context the server has lost.

        ``record`` adds the run to the local journal (off for internal runs such as
        data transfers). ``on_created`` is called once with the run as soon as the
        server has made it (for a held answer, before the run settles).
        """
        client = await self.client()
        if client.facts.async_runs is False:
            raise RunsUnavailableError("This server has no async runs.")
        sandbox_id = await self.ensure_sandbox(request.sandbox)
        ctx = await self.ensure_context(sandbox_id, request.context, request.language)
        # A server that can watch runs holds the answer until a short run has ended.
        settle = SUBMIT_SETTLE if client.features.can_watch else None
        made = _MadeRun(on_created)
        try:
            run = await self._create(client, sandbox_id, ctx.id, request, settle, made)
        finally:
            if record and made.run is not None:
                self._record(made.run, request.context, request.code)
        client.facts.async_runs = True
        return run

    async def _create(
        self,
        client: AsyncSandboxClient,
        sandbox_id: str,
        context_id: str,
        request: RunRequest,
        settle: float | None,
        made: _MadeRun,
    ) -> Run:
        try:
            run = await client.create_run(
                sandbox_id,
                code=request.code,
                context_id=context_id,
                envs=request.envs,
                timeout=request.run_timeout,
                idempotency_key=request.idempotency_key,
                settle=settle,
                on_created=made,
            )
        except NotFoundError:
            sandbox_id = await self._recover_lost(client, sandbox_id, request.sandbox)
            ctx = await self.ensure_context(sandbox_id, request.context, request.language)
            self.notices.append(
                f"Context {request.context!r} no longer existed on the server; started a "
                "fresh one (variables from earlier cells are gone)."
            )
            run = await client.create_run(  # a new context: a new request, a new key
                sandbox_id,
                code=request.code,
                context_id=ctx.id,
                envs=request.envs,
                timeout=request.run_timeout,
                settle=settle,
                on_created=made,
            )
        except SandboxAPIError as exc:
            if not runs_unavailable(exc):
                raise
            client.facts.async_runs = False
            raise RunsUnavailableError(
                f"This server has no async runs ({exc.message}); cells are streamed."
            ) from exc
        return run

    def submit_now(
        self, request: RunRequest, on_created: Callable[[Run], None] | None = None
    ) -> Run | None:
        """`submit` from the calling thread, skipping the I/O loop, when it can be.

        That is when the server is known to hold a submit's answer and the sandbox and
        context are already made: a short run then comes back whole a few
        milliseconds sooner. None means "not this way": `submit` the same request
        (its idempotency key finds the run if this one made it).
        """
        client = self._client
        if client is None or client.facts.async_runs is not True or not client.features.can_watch:
            return None
        sandbox_id = request.sandbox or self.sandbox_id
        ctx = self._contexts.get((sandbox_id or "", ContextKey(request.context, request.language)))
        if sandbox_id is None or ctx is None:
            return None
        made = _MadeRun(on_created)
        try:
            return client.create_run_now(
                sandbox_id,
                code=request.code,
                context_id=ctx.id,
                idempotency_key=request.idempotency_key,
                settle=SUBMIT_SETTLE,
                envs=request.envs,
                timeout=request.run_timeout,
                on_created=made,
            )
        finally:
            if made.run is not None:
                self._record(made.run, request.context, request.code)

    async def prepare_stream(
        self,
        *,
        context: str = DEFAULT_CONTEXT,
        language: str | None = None,
        sandbox: str | None = None,
        run_timeout: int | None = None,
    ) -> StreamFold:
        """Sandbox and context for a streamed execution, and its empty `StreamFold`."""
        sandbox_id = await self.ensure_sandbox(sandbox)
        ctx = await self.ensure_context(sandbox_id, context, language)
        return StreamFold(sandbox_id=sandbox_id, context_id=ctx.id, timeout_secs=run_timeout)

    async def follow(
        self,
        run: Run,
        *,
        policy: PollPolicy,
        on_update: Callable[[Run], None] | None = None,
    ) -> Run:
        """Poll a run until it ends, calling ``on_update`` with every changed snapshot."""
        client = await self.client()
        return await follow_run(
            client,
            run.sandbox_id or self.sandbox_id or "",
            run.id,
            policy=policy,
            deadline=run_deadline(run),
            on_update=on_update,
            initial=run,
        )

    async def cancel(self, run: Run) -> Run:
        """Ask the server to cancel a run; returns the run as the server then reports it."""
        client = await self.client()
        return await client.cancel_run(run.sandbox_id or self.sandbox_id or "", run.id)

    async def run_to_end(
        self,
        code: str,
        *,
        policy: PollPolicy,
        context: str = DEFAULT_CONTEXT,
        language: str | None = None,
        sandbox: str | None = None,
        run_timeout: int | None = None,
    ) -> Run:
        """Submit an internal run (not journaled) and follow it until it ends.

        On a server without async runs the code is streamed instead.
        """
        request = RunRequest(
            code, context=context, language=language, sandbox=sandbox, run_timeout=run_timeout
        )
        try:
            run = await self.submit(request, record=False)
        except RunsUnavailableError:
            from sandbox_magic.session.streaming import stream_to_end

            fold = await self.prepare_stream(
                context=context, language=language, sandbox=sandbox, run_timeout=run_timeout
            )
            return await stream_to_end(await self.client(), fold, code=code)
        return await self.follow(run, policy=policy)

    async def _recover_lost(
        self, client: AsyncSandboxClient, sandbox_id: str, requested: str | None
    ) -> str:
        """Forget what the server no longer has; recreate our own sandbox if it is gone."""
        self._contexts = {k: v for k, v in self._contexts.items() if k[0] != sandbox_id}
        try:
            await client.get_sandbox(sandbox_id)
        except NotFoundError:
            if requested is not None or not self.created_sandbox:
                raise
            self.sandbox_id = None
            return await self.ensure_sandbox(None)
        return sandbox_id

    def _record(self, run: Run, context: str, code: str) -> None:
        if self.journal is None or self._url is None:
            return
        head = next((line.strip() for line in code.splitlines() if line.strip()), "")
        state_dir = self.embedded.state_dir if self.embedded is not None else None
        self.journal.record(
            JournalEntry(
                run_id=run.id,
                sandbox_id=run.sandbox_id or self.sandbox_id or "",
                context=context,
                url=self.url or "",
                code_head=head[:200],
                submitted_at=datetime.now(UTC).isoformat(timespec="seconds"),
                embedded_state_dir=str(state_dir) if state_dir else None,
            )
        )

    def take_notices(self) -> list[str]:
        """One-line notices for the user gathered since the last call."""
        notices, self.notices = self.notices, []
        return notices

    async def delete_sandbox(self) -> str | None:
        """Delete the sandbox this session created; returns its id, if there was one."""
        if self.sandbox_id is None or not self.created_sandbox or self._client is None:
            return None
        sandbox_id, self.sandbox_id = self.sandbox_id, None
        self.created_sandbox = False
        self._contexts = {k: v for k, v in self._contexts.items() if k[0] != sandbox_id}
        with contextlib.suppress(NotFoundError):
            await self._client.delete_sandbox(sandbox_id)
        return sandbox_id

    async def close(self) -> None:
        """Close the connection pool and stop the embedded server (and its kernels)."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()
        server, self.embedded = self.embedded, None
        if server is not None:
            try:
                await asyncio.to_thread(server.stop)
            except RuntimeError:
                # At interpreter exit (atexit) no new threads may start: stop it here,
                # or the server would outlive the kernel where no PDEATHSIG exists.
                server.stop()
        self._contexts.clear()
        self.sandbox_id = None

    def describe(self) -> dict[str, Any]:
        """Facts for ``%sandbox status`` (never the key)."""
        return {
            "url": self.url,
            "embedded": self.is_embedded,
            "sandbox": self.sandbox_id,
            "contexts": {key.name: ctx.id for (_, key), ctx in self._contexts.items()},
            "key": "set" if self.settings.api_key else "not set",
            "url_source": self.settings.url_source,
            "key_source": self.settings.key_source,
            "api": self.facts.describe() if self.facts is not None else "not connected yet",
        }
