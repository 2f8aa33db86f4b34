"""The sandbox service: sandboxes, contexts, runs and artifacts, behind the routes.

Routes validate the request and call one method here; this module owns the live
objects (contexts and their kernels, runs in flight) and the `Store`.

Lifetimes:

- a sandbox is a directory under the state dir; it survives server restarts;
- a context is a live kernel; it does not survive a restart (its variables are gone);
- runs and artifacts are kept in the store, readable after restarts, and even after
  their sandbox was deleted;
- ``DELETE`` of a sandbox ends its runs (``cancelled``), shuts its kernels down and
  removes its directory; it then answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sandbox_magic.server import artifacts as artifact_files
from sandbox_magic.server import languages, runtime_area
from sandbox_magic.server.config import ServerConfig
from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.kernels import Kernel, KernelPool, prepare_python
from sandbox_magic.server.kernelspecs import KernelChoice, resolve_language
from sandbox_magic.server.runs import SERVER_STOPPED_OUTCOME, ContextRuntime, RunState, cancelled
from sandbox_magic.server.store import Page, Store
from sandbox_magic.server.util import new_id, now_iso
from sandbox_magic.wire import CAPACITY_EXCEEDED

__all__ = ["LiveSandbox", "SandboxService"]

log = logging.getLogger(__name__)


def _host_resources() -> dict[str, int]:
    vcpus = os.cpu_count() or 1
    try:
        memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        memory_mb = 1024
    return {"vcpus": vcpus, "memory_mb": int(memory_mb)}


@dataclass(eq=False)
class LiveSandbox:
    """A sandbox of this server: its directory, record and live contexts."""

    record: dict[str, Any]
    root: Path
    envs: dict[str, str]
    contexts: dict[str, ContextRuntime] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    default_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.record.items() if not k.startswith("_")}


class SandboxService:
    """Everything the HTTP routes can ask for."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.store = Store(config.state_dir)
        self.pool = KernelPool(size=config.warm_kernels, idle_dir=config.state_dir / "idle")
        self.sandboxes: dict[str, LiveSandbox] = {}
        self.runs: dict[str, RunState] = {}
        self._retention = timedelta(days=config.retention_days)
        self._inflight: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._background: set[asyncio.Task[None]] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the store, load sandboxes, start warming kernels."""
        failed = self.store.recover(completed_at=now_iso())
        if failed:
            log.warning("%d run(s) were in flight when the server last stopped", failed)
        self.store.prune(now_iso=now_iso())
        for record in self.store.live_sandboxes():
            root = self.store.sandbox_root / record["id"]
            (root / "workspace").mkdir(parents=True, exist_ok=True)
            envs = dict(record.get("_envs") or {})
            self.sandboxes[record["id"]] = LiveSandbox(record=record, root=root, envs=envs)
        self.pool.start()
        # Look for the other languages' kernels once, early, off the event loop.
        self._spawn(asyncio.to_thread(languages.prefetch))

    async def stop(self) -> None:
        """End runs in flight (``failed``), shut every kernel down, close the store."""
        for sandbox in self.sandboxes.values():
            for context in list(sandbox.contexts.values()):
                await context.close(SERVER_STOPPED_OUTCOME)
        await self.pool.close()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        self.store.close()

    def _spawn(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- idempotency -----------------------------------------------------------------

    async def idempotent(
        self,
        scope: str,
        key: str | None,
        request: Any,
        create: Callable[[], Awaitable[str]],
    ) -> str:
        """Create once per ``(scope, key)``: the same key gives back the same object id.

        Reusing a key with a different request body is refused (409).
        """
        if key is None:
            return await create()
        fingerprint = hashlib.sha256(
            json.dumps(request, sort_keys=True, default=str).encode()
        ).hexdigest()
        known = self.store.idempotent_object(scope, key)
        if known is not None:
            if known[0] != fingerprint:
                raise ApiError.conflict(
                    "This Idempotency-Key was already used with a different request."
                )
            return known[1]
        pending = self._inflight.get((scope, key))
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._inflight[(scope, key)] = future
        try:
            object_id = await create()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        finally:
            self._inflight.pop((scope, key), None)
        self.store.remember_idempotent(scope, key, fingerprint, object_id)
        future.set_result(object_id)
        return object_id

    # -- sandboxes -------------------------------------------------------------------

    def create_sandbox(
        self,
        *,
        template: str,
        timeout_ms: int,
        metadata: dict[str, Any],
        envs: dict[str, str],
    ) -> dict[str, Any]:
        sandbox_id = new_id("sb")
        root = self.store.sandbox_root / sandbox_id
        (root / "workspace").mkdir(parents=True, exist_ok=True)
        created = now_iso()
        record: dict[str, Any] = {
            "id": sandbox_id,
            "status": "running",
            "template": template,
            "config": _host_resources(),
            "metadata": metadata,
            "created_at": created,
            "started_at": created,
            "timeout_ms": timeout_ms,
            "expires_at": None,
            "cwd": str(root / "workspace"),
            "_envs": envs,
        }
        self.store.put_sandbox(record)
        sandbox = LiveSandbox(record=record, root=root, envs=envs)
        self.sandboxes[sandbox_id] = sandbox
        return sandbox.public()

    def sandbox(self, sandbox_id: str) -> LiveSandbox:
        """A live sandbox, or 404."""
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            deleted = self.store.sandbox_was_deleted(sandbox_id)
            detail = "was deleted" if deleted else "does not exist"
            raise ApiError.not_found(f"Sandbox {sandbox_id} {detail}.")
        return sandbox

    def _readable_sandbox(self, sandbox_id: str) -> None:
        """Runs and artifacts stay readable after their sandbox was deleted."""
        if sandbox_id not in self.sandboxes and not self.store.sandbox_was_deleted(sandbox_id):
            raise ApiError.not_found(f"Sandbox {sandbox_id} does not exist.")

    def list_sandboxes(self) -> list[dict[str, Any]]:
        return [sandbox.public() for sandbox in self.sandboxes.values()]

    async def delete_sandbox(self, sandbox_id: str) -> None:
        sandbox = self.sandbox(sandbox_id)
        del self.sandboxes[sandbox_id]
        record = dict(sandbox.record, status="destroyed")
        self.store.put_sandbox(record, deleted=True)
        contexts = list(sandbox.contexts.values())
        sandbox.contexts.clear()
        for context in contexts:
            await context.close(cancelled("the sandbox was deleted"))
            self._spawn(self.pool.release(context.kernel))
        self._spawn(asyncio.to_thread(artifact_files.remove_tree, sandbox.root))

    # -- contexts --------------------------------------------------------------------

    def _context_cwd(self, sandbox: LiveSandbox, requested: str | None) -> Path:
        """The real directory for a requested cwd: inside the sandbox, or 400."""
        if not requested:
            return sandbox.workspace
        runtime_area.check_cwd(requested, workspace=sandbox.workspace)
        path = Path(requested)
        if path.is_absolute():
            real_root = sandbox.root.resolve()
            resolved = path.resolve()
            if resolved.is_relative_to(real_root):
                requested = resolved.relative_to(real_root).as_posix()
            else:  # "/workspace" means <sandbox>/workspace
                requested = requested.lstrip("/")
        if requested in ("", "."):
            return sandbox.root.resolve()
        cwd = artifact_files.safe_join(sandbox.root, requested)
        cwd.mkdir(parents=True, exist_ok=True)
        return cwd

    async def create_context(
        self, sandbox_id: str, *, language: str | None, cwd: str | None
    ) -> dict[str, Any]:
        sandbox = self.sandbox(sandbox_id)
        choice = resolve_language(language, self.pool.spec_manager)
        directory = self._context_cwd(sandbox, cwd)
        context = await self._start_context(sandbox, choice, directory)
        return context.to_json()

    async def _start_context(
        self, sandbox: LiveSandbox, choice: KernelChoice, cwd: Path
    ) -> ContextRuntime:
        try:
            env = {**runtime_area.kernel_env(sandbox.workspace), **sandbox.envs}
            kernel = await self.pool.acquire(choice, cwd=cwd, env=env)
        except Exception as error:
            log.exception("could not start a kernel")
            raise ApiError(
                503, CAPACITY_EXCEEDED, f"Could not start a kernel: {error}", retryable=True
            ) from error

        async def prepare(restarted: Kernel) -> None:
            if choice.is_own_python:
                await prepare_python(restarted, cwd=cwd, env=env)

        context = ContextRuntime(
            context_id=new_id("ctx"),
            sandbox_id=sandbox.id,
            language=choice.language,
            cwd=cwd,
            kernel=kernel,
            prepare=prepare,
            store=self.store,
            on_finish=self._forget_run,
            interrupt_grace=self.config.interrupt_grace,
            max_artifact_bytes=self.config.max_artifact_bytes,
        )
        if sandbox.id not in self.sandboxes:  # deleted while the kernel started
            await context.close(cancelled("the sandbox was deleted"))
            await self.pool.release(kernel)
            raise ApiError.not_found(f"Sandbox {sandbox.id} was deleted.")
        sandbox.contexts[context.id] = context
        return context

    def context(self, sandbox_id: str, context_id: str) -> ContextRuntime:
        sandbox = self.sandbox(sandbox_id)
        context = sandbox.contexts.get(context_id)
        if context is None:
            raise ApiError.not_found(
                f"Context {context_id} does not exist in sandbox {sandbox_id}."
            )
        return context

    def list_contexts(self, sandbox_id: str) -> list[dict[str, Any]]:
        return [context.to_json() for context in self.sandbox(sandbox_id).contexts.values()]

    async def delete_context(self, sandbox_id: str, context_id: str) -> None:
        context = self.context(sandbox_id, context_id)
        self.sandboxes[sandbox_id].contexts.pop(context_id, None)
        await context.close(cancelled("the context was deleted"))
        self._spawn(self.pool.release(context.kernel))

    async def default_context(self, sandbox_id: str, language: str | None) -> ContextRuntime:
        """The sandbox's default context for a language, created on first use."""
        sandbox = self.sandbox(sandbox_id)
        choice = resolve_language(language, self.pool.spec_manager)
        async with sandbox.default_lock:
            existing = sandbox.contexts.get(sandbox.defaults.get(choice.spec_name, ""))
            if existing is not None:
                return existing
            context = await self._start_context(sandbox, choice, sandbox.workspace)
            sandbox.defaults[choice.spec_name] = context.id
            return context

    # -- runs ------------------------------------------------------------------------

    def _forget_run(self, run: RunState) -> None:
        self.runs.pop(run.id, None)

    def submit_run(
        self, context: ContextRuntime, *, code: str, envs: dict[str, str], timeout: int | None
    ) -> RunState:
        run = RunState(
            id=new_id("run"),
            sandbox_id=context.sandbox_id,
            context_id=context.id,
            code=code,
            envs=envs,
            timeout_secs=timeout or self.config.default_run_timeout,
            retention=self._retention,
        )
        self.runs[run.id] = run
        self.store.put_run(run.to_json())
        context.submit(run)
        return run

    def live_run(self, sandbox_id: str, run_id: str) -> RunState | None:
        """The in-memory run while it is queued or running (None otherwise)."""
        live = self.runs.get(run_id)
        return live if live is not None and live.sandbox_id == sandbox_id else None

    def get_run(self, sandbox_id: str, run_id: str) -> dict[str, Any]:
        live = self.runs.get(run_id)
        if live is not None and live.sandbox_id == sandbox_id:
            return live.to_json()
        self._readable_sandbox(sandbox_id)
        stored = self.store.get_run(run_id)
        if stored is None or stored.get("sandbox_id") != sandbox_id:
            raise ApiError.not_found(f"Run {run_id} does not exist in sandbox {sandbox_id}.")
        return stored

    def list_runs(
        self,
        sandbox_id: str,
        *,
        status: str | None,
        context_id: str | None,
        limit: int,
        cursor: int | None,
    ) -> Page:
        self._readable_sandbox(sandbox_id)
        page = self.store.list_runs(
            sandbox_id, status=status, context_id=context_id, limit=limit, cursor=cursor
        )
        items = []
        for item in page.items:
            live = self.runs.get(item["id"])
            items.append(live.to_json() if live is not None else item)
        return Page(items, page.next_cursor)

    def cancel_run(self, sandbox_id: str, run_id: str) -> dict[str, Any]:
        live = self.runs.get(run_id)
        if live is None or live.sandbox_id != sandbox_id:
            return self.get_run(sandbox_id, run_id)  # finished (or 404): nothing to do
        sandbox = self.sandboxes.get(sandbox_id)
        context = sandbox.contexts.get(live.context_id) if sandbox else None
        if context is not None:
            context.cancel(live)
        return live.to_json()

    # -- artifacts -------------------------------------------------------------------

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
        self._readable_sandbox(sandbox_id)
        return self.store.list_artifacts(
            sandbox_id,
            context_id=context_id,
            execution_count=execution_count,
            kind=kind,
            limit=limit,
            cursor=cursor,
        )

    def get_artifact(self, sandbox_id: str, artifact_id: str) -> dict[str, Any]:
        self._readable_sandbox(sandbox_id)
        found = (
            self.store.get_artifact(artifact_id)
            if artifact_files.ARTIFACT_ID.match(artifact_id)
            else None
        )
        if found is None or found[0] != sandbox_id:
            raise ApiError.not_found(
                f"Artifact {artifact_id} does not exist in sandbox {sandbox_id}."
            )
        return found[1]

    def artifact_file(self, sandbox_id: str, artifact_id: str) -> tuple[Path, dict[str, Any]]:
        """The stored bytes of an artifact (a path inside the state dir) and its record."""
        artifact = self.get_artifact(sandbox_id, artifact_id)
        path = self.store.artifact_path(artifact["id"])
        if not path.resolve().is_relative_to(self.store.artifact_dir.resolve()):
            raise ApiError.not_found(f"Artifact {artifact_id} has no content.")
        if not path.is_file():
            raise ApiError.not_found(f"The content of artifact {artifact_id} is gone.")
        return path, artifact

    def delete_artifact(self, sandbox_id: str, artifact_id: str) -> None:
        artifact = self.get_artifact(sandbox_id, artifact_id)
        self.store.delete_artifact(artifact["id"])
