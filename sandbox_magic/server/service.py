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
import posixpath
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox_magic.server import artifacts as artifact_files
from sandbox_magic.server import runtime_area
from sandbox_magic.server.cgroups import CgroupTree, SandboxCgroup
from sandbox_magic.server.config import ServerConfig
from sandbox_magic.server.confinement import (
    WORKSPACE,
    Confinement,
    Jail,
    Limits,
    detect,
    new_uid,
)
from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.kernels import Kernel, KernelPool, prepare_python
from sandbox_magic.server.kernelspecs import KernelChoice, resolve_language
from sandbox_magic.server.runs import SERVER_STOPPED_OUTCOME, ContextRuntime, RunState, cancelled
from sandbox_magic.server.store import Page, Store
from sandbox_magic.server.util import iso, new_id, now_iso
from sandbox_magic.server.workspace_disk import WorkspaceDisks
from sandbox_magic.wire import CAPACITY_EXCEEDED

__all__ = ["LiveSandbox", "SandboxService"]

log = logging.getLogger(__name__)

#: Seconds between two looks for sandboxes whose lifetime or idle time is over.
_REAP_INTERVAL = 0.5


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
    jail: Jail | None = None
    #: Under isolation: the warm kernel this sandbox was made for, until a context takes it.
    warm: Kernel | None = None
    #: When a run was last submitted or running (``time.monotonic``).
    last_active: float = field(default_factory=time.monotonic)
    contexts: dict[str, ContextRuntime] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    default_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def id(self) -> str:
        return str(self.record["id"])

    @property
    def workspace(self) -> Path:
        return self.root / "workspace"

    @property
    def busy(self) -> bool:
        """Whether a run is queued or running in one of its contexts."""
        return any(context.busy for context in self.contexts.values())

    def end_reason(self, now: float) -> str | None:
        """Why the sandbox should stop now (its lifetime or idle time is over), if so."""
        expires = self.record.get("_expires_epoch")
        if isinstance(expires, (int, float)) and now >= expires:
            return f"its timeout_ms of {self.record.get('timeout_ms')} ms passed"
        idle_ms = self.record.get("inactivity_timeout_ms") or 0
        if self.busy:
            self.last_active = time.monotonic()
        elif idle_ms and (time.monotonic() - self.last_active) * 1000 >= idle_ms:
            return f"it was idle for its inactivity_timeout_ms of {idle_ms} ms"
        return None

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in self.record.items() if not k.startswith("_")}


class SandboxService:
    """Everything the HTTP routes can ask for."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.confinement: Confinement = config.confinement or detect(
            config.isolation, allow_internet=config.internet, pass_env=config.pass_env
        )
        if not self.confinement.active and config.isolation != "none":
            log.warning("kernels run UNCONFINED: %s", self.confinement.reason)
        self.store = Store(config.state_dir)
        self.pool = KernelPool(
            size=config.warm_kernels,
            idle_dir=config.state_dir / "idle",
            confinement=self.confinement,
            new_jail=self._new_jail if self.confinement.as_root else None,
        )
        self.sandboxes: dict[str, LiveSandbox] = {}
        self.runs: dict[str, RunState] = {}
        self._retention = timedelta(days=config.retention_days)
        self._inflight: dict[tuple[str, str], asyncio.Future[str]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._starts = asyncio.Semaphore(max(1, config.concurrent_starts))
        self._starting = 0
        self._reaper: asyncio.Task[None] | None = None
        #: Per-sandbox cgroups, where this server can use them (found at `start`).
        self.cgroups: CgroupTree | None = None
        #: Per-sandbox workspace filesystems, where this server can make them.
        self.disks: WorkspaceDisks | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Recover the store, load sandboxes, start warming kernels."""
        failed = self.store.recover(completed_at=now_iso())
        if failed:
            log.warning("%d run(s) were in flight when the server last stopped", failed)
        self.store.prune(now_iso=now_iso())
        if self.confinement.active and self.confinement.as_root:
            self.cgroups = await asyncio.to_thread(CgroupTree.create)
            self.disks = await asyncio.to_thread(
                WorkspaceDisks.create, self.config.state_dir / "disks"
            )
        live = {record["id"] for record in self.store.live_sandboxes()}
        if self.disks is not None:
            await asyncio.to_thread(self.disks.remove_stale, live, self.store.sandbox_root)
        for record in self.store.live_sandboxes():
            root = self.store.sandbox_root / record["id"]
            (root / "workspace").mkdir(parents=True, exist_ok=True)
            envs = dict(record.get("_envs") or {})
            jail = await asyncio.to_thread(self._reopen_jail, record, root)
            self.sandboxes[record["id"]] = LiveSandbox(
                record=record, root=root, envs=envs, jail=jail
            )
        await asyncio.to_thread(self._remove_orphans)
        self.pool.start()
        self._reaper = asyncio.get_running_loop().create_task(self._reap_forever(), name="reaper")

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(_REAP_INTERVAL)
            try:
                await self.reap()
            except Exception:
                log.exception("could not stop an expired sandbox")

    async def stop(self) -> None:
        """End runs in flight (``failed``), shut every kernel down, close the store."""
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(BaseException):
                await self._reaper
        for sandbox in self.sandboxes.values():
            for context in list(sandbox.contexts.values()):
                await context.close(SERVER_STOPPED_OUTCOME)
        await self.pool.close()
        for task in list(self._background):
            with contextlib.suppress(BaseException):
                await task
        if self.cgroups is not None:
            await asyncio.to_thread(self.cgroups.remove)
        if self.disks is not None:  # the images stay: the next start mounts them again
            disks = self.disks
            for sandbox in self.sandboxes.values():
                await asyncio.to_thread(disks.detach, sandbox.id, sandbox.workspace, keep=True)
            await asyncio.to_thread(
                disks.remove_stale, set(self.sandboxes), self.store.sandbox_root
            )
        self.store.close()

    def isolation(self) -> dict[str, Any]:
        """The isolation in force, as ``/healthz`` shows it (with how limits are kept)."""
        described = self.confinement.describe()
        if self.confinement.active:
            described["limits"] = (
                f"cgroup v1 ({', '.join(self.cgroups.controllers)}) per sandbox, "
                "rlimits per process"
                if self.cgroups is not None
                else "rlimits per process (no writable cgroups here)"
            )
            described["workspace"] = (
                "a filesystem of its own per sandbox, disk_mb large"
                if self.disks is not None
                else "only each file size-limited (no loop-mounted filesystems here)"
            )
        return described

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
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str] = loop.create_future()
        self._inflight[(scope, key)] = future
        try:
            object_id = await create()
        except BaseException as error:
            self._inflight.pop((scope, key), None)
            future.set_exception(error)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        future.set_result(object_id)
        # Stored on the loop's next turn, after whatever the creation woke (a new run's
        # code goes to its kernel first); until then `_inflight` answers for the key.
        loop.call_soon(self._remember_idempotent, scope, key, fingerprint, object_id)
        return object_id

    def _remember_idempotent(self, scope: str, key: str, fingerprint: str, object_id: str) -> None:
        try:
            self.store.remember_idempotent(scope, key, fingerprint, object_id)
        finally:
            self._inflight.pop((scope, key), None)

    # -- sandboxes -------------------------------------------------------------------

    def _sandbox_config(self, jail: Jail | None) -> dict[str, Any]:
        """The ``config`` a sandbox reports: the limits and network in force, never the
        host's size (unconfined code has the host's network, whatever it asked for)."""
        isolation = self.confinement.mode
        if jail is None:
            return {**_host_resources(), "isolation": isolation, "internet_access": True}
        return {
            "vcpus": jail.limits.vcpus,
            "memory_mb": jail.limits.memory_mb,
            "isolation": isolation,
            "internet_access": jail.internet,
            "disk_mb": jail.limits.disk_mb if jail.disk else None,
            "limits": self._public_limits(jail),
        }

    @staticmethod
    def _public_limits(jail: Jail) -> dict[str, int]:
        """The limits really in force (no disk size where the workspace has none)."""
        limits = jail.limits.public()
        if not jail.disk:
            limits.pop("disk_mb", None)
        return limits

    def _attach_disk(self, name: str, root: Path, limits: Limits, uid: int) -> bool:
        """Mount sandbox ``name``'s own workspace filesystem (blocking); whether it is."""
        if self.disks is None:
            return False
        try:
            return self.disks.attach(name, root / "workspace", size_mb=limits.disk_mb, uid=uid)
        except (OSError, subprocess.SubprocessError) as error:
            raise ApiError(
                503,
                CAPACITY_EXCEEDED,
                f"Could not make the sandbox's workspace: {error}",
                retryable=True,
                headers={"Retry-After": "5"},
            ) from error

    def _new_jail(self) -> Jail:
        """A sandbox directory and uid for a warm kernel: the maximum limits, lowered to
        the sandbox's own when one takes it."""
        policy = self.config.limits
        root = self.store.sandbox_root / new_id("sb")
        limits = policy.limits(vcpus=os.cpu_count() or 1, memory_mb=policy.max_memory_mb)
        uid = new_uid()
        return Jail(
            uid=uid,
            root=root,
            limits=limits,
            cgroup=self._cgroup(root.name, limits),
            disk=self._attach_disk(root.name, root, limits, uid),
        )

    def _cgroup(self, name: str, limits: Limits, reuse: Jail | None = None) -> SandboxCgroup | None:
        """The cgroups of sandbox ``name`` (``reuse``'s, for a warm kernel's sandbox), with
        ``limits`` in force; None where this server uses no cgroups."""
        cgroup = reuse.cgroup if reuse is not None and reuse.cgroup is not None else None
        if cgroup is None and self.cgroups is not None:
            cgroup = self.cgroups.sandbox(name)
        if cgroup is not None:
            cgroup.set_limits(
                memory_mb=limits.memory_mb, processes=limits.processes, vcpus=limits.vcpus
            )
        return cgroup

    def _remove_orphans(self) -> None:
        """Sandbox directories no live sandbox owns (warm ones of a killed server)."""
        for directory in self.store.sandbox_root.iterdir():
            if directory.name not in self.sandboxes and directory.is_dir():
                if self.disks is not None:
                    self.disks.detach(directory.name, directory / "workspace")
                artifact_files.remove_tree(directory)

    def _reopen_jail(self, record: dict[str, Any], root: Path) -> Jail | None:
        """The jail of a stored sandbox (one made under another isolation gets one now)."""
        if not self.confinement.active:
            return None
        stored = record.get("_jail") or {}
        fresh = False
        try:
            limits = Limits(**stored["limits"])
            uid = int(stored["uid"])
        except (KeyError, TypeError, ValueError):  # made while isolation was off
            limits = self.config.limits.limits(vcpus=None, memory_mb=None)
            uid, fresh = new_uid(), True
        internet = bool(stored.get("internet")) and self.confinement.offers_internet
        jail = Jail(
            uid=uid,
            root=root,
            limits=limits,
            internet=internet,
            cgroup=self._cgroup(root.name, limits),
            disk=self._attach_disk(root.name, root, limits, uid),
        )
        self.confinement.prepare(jail)
        if fresh and self.confinement.as_root:
            for path in root.rglob("*"):
                with contextlib.suppress(OSError):
                    os.lchown(path, uid, uid)
        record["_jail"] = {"uid": uid, "limits": limits.public(), "internet": internet}
        if not jail.disk:
            record["_jail"]["limits"].pop("disk_mb", None)
        record["config"] = self._sandbox_config(jail)
        record["cwd"] = self.confinement.inside(jail, jail.workspace)
        self.store.put_sandbox(record)
        return jail

    async def reap(self) -> None:
        """Stop every sandbox whose lifetime or idle time is over."""
        now = time.time()
        for sandbox in list(self.sandboxes.values()):
            reason = sandbox.end_reason(now)
            if reason is not None and sandbox.id in self.sandboxes:
                log.info("sandbox %s expired: %s", sandbox.id, reason)
                await self.delete_sandbox(sandbox.id, status="expired", reason=reason)

    async def create_sandbox(
        self,
        *,
        template: str,
        timeout_ms: int | None,
        metadata: dict[str, Any],
        envs: dict[str, str],
        id_prefix: str = "sb",
        vcpus: int | None = None,
        memory_mb: int | None = None,
        inactivity_timeout_ms: int | None = None,
        internet_access: bool = False,
        disk_mb: int | None = None,
    ) -> dict[str, Any]:
        """A new sandbox's record. ``internet_access`` is granted where this server's
        isolation can give it (the record's ``config`` says what was)."""
        sandbox_id = new_id(id_prefix)
        root = self.store.sandbox_root / sandbox_id
        jail: Jail | None = None
        policy = self.config.limits
        # A warm kernel's sandbox has a disk of the default size: taken only for that.
        fits = self.disks is None or policy.disk(disk_mb) == policy.default_disk_mb
        warm = self.pool.take_warm() if fits else None
        if warm is not None and warm.jail is not None:
            root, sandbox_id = warm.jail.root, warm.jail.root.name
        if self.confinement.active:
            limits = policy.limits(vcpus=vcpus, memory_mb=memory_mb, disk_mb=disk_mb)
            uid = warm.jail.uid if warm is not None and warm.jail is not None else new_uid()
            internet = internet_access and self.confinement.offers_internet
            warm_jail = warm.jail if warm is not None else None
            if warm_jail is not None:
                disk = warm_jail.disk
            else:
                disk = await asyncio.to_thread(self._attach_disk, sandbox_id, root, limits, uid)
            jail = Jail(
                uid=uid,
                root=root,
                limits=limits,
                internet=internet,
                cgroup=self._cgroup(sandbox_id, limits, reuse=warm_jail),
                disk=disk,
            )
            self.confinement.prepare(jail)
        else:
            (root / "workspace").mkdir(parents=True, exist_ok=True)
        created = now_iso()
        if timeout_ms is None:
            timeout_ms = self.config.default_sandbox_timeout_ms
        if inactivity_timeout_ms is None:
            inactivity_timeout_ms = self.config.default_inactivity_timeout_ms
        expires = time.time() + timeout_ms / 1000 if timeout_ms else None
        record: dict[str, Any] = {
            "id": sandbox_id,
            "status": "running",
            "template": template,
            "config": self._sandbox_config(jail),
            "metadata": metadata,
            "created_at": created,
            "started_at": created,
            "timeout_ms": timeout_ms,
            "inactivity_timeout_ms": inactivity_timeout_ms,
            "expires_at": iso(datetime.fromtimestamp(expires, tz=UTC)) if expires else None,
            "cwd": self.confinement.inside(jail, jail.workspace)
            if jail
            else str(root / "workspace"),
            "_envs": envs,
            "_expires_epoch": expires,
        }
        if jail is not None:
            record["_jail"] = {
                "uid": jail.uid,
                "limits": self._public_limits(jail),
                "internet": jail.internet,
            }
        self.store.put_sandbox(record)
        sandbox = LiveSandbox(record=record, root=root, envs=envs, jail=jail, warm=warm)
        self.sandboxes[sandbox_id] = sandbox
        return sandbox.public()

    def sandbox(self, sandbox_id: str) -> LiveSandbox:
        """A live sandbox, or 404."""
        sandbox = self.sandboxes.get(sandbox_id)
        if sandbox is None:
            ended = self.store.ended_sandbox(sandbox_id)
            if ended is None:
                detail = "does not exist"
            elif ended.get("status") == "expired":
                detail = f"expired: {ended.get('_end_reason', 'its time was up')}"
            else:
                detail = "was deleted"
            raise ApiError.not_found(f"Sandbox {sandbox_id} {detail}.")
        return sandbox

    def _readable_sandbox(self, sandbox_id: str) -> None:
        """Runs and artifacts stay readable after their sandbox was deleted."""
        if sandbox_id not in self.sandboxes and not self.store.sandbox_was_deleted(sandbox_id):
            raise ApiError.not_found(f"Sandbox {sandbox_id} does not exist.")

    def list_sandboxes(self) -> list[dict[str, Any]]:
        return [sandbox.public() for sandbox in self.sandboxes.values()]

    async def delete_sandbox(
        self, sandbox_id: str, *, status: str = "destroyed", reason: str = "the sandbox was deleted"
    ) -> None:
        """Stop a sandbox: end its runs, kill its kernels, remove its files.

        ``status`` ``expired`` (with the ``reason``) is for one whose time is up.
        """
        sandbox = self.sandbox(sandbox_id)
        del self.sandboxes[sandbox_id]
        record = dict(sandbox.record, status=status)
        if status == "expired":
            record["_end_reason"] = reason
        self.store.put_sandbox(record, deleted=True)
        contexts = list(sandbox.contexts.values())
        sandbox.contexts.clear()
        if sandbox.warm is not None:
            self._spawn(self.pool.release(sandbox.warm))
            sandbox.warm = None
        kernels = []
        for context in contexts:
            await context.close(cancelled(reason))
            kernels.append(context.kernel)
        self._spawn(self._remove_sandbox(sandbox, kernels))

    async def _remove_sandbox(self, sandbox: LiveSandbox, kernels: list[Kernel]) -> None:
        """Shut a deleted sandbox's kernels down, then kill what is left and remove its
        cgroups and files."""
        await asyncio.gather(*(self.pool.release(kernel) for kernel in kernels))
        if sandbox.jail is not None and sandbox.jail.cgroup is not None:
            await asyncio.to_thread(sandbox.jail.cgroup.remove)
        if self.disks is not None and sandbox.jail is not None and sandbox.jail.disk:
            await asyncio.to_thread(self.disks.detach, sandbox.id, sandbox.workspace)
        await asyncio.to_thread(artifact_files.remove_tree, sandbox.root)

    # -- contexts --------------------------------------------------------------------

    def _context_cwd(self, sandbox: LiveSandbox, requested: str | None) -> tuple[Path, str | None]:
        """The real directory for a requested cwd: inside the sandbox, or 400.

        Under isolation, ``/tmp`` (or a folder in it) is the kernel's own private
        ``/tmp``: the real directory is then the workspace (where new files are looked
        for), and the second item the cwd as the code sees it.
        """
        if not requested:
            return sandbox.workspace, None
        runtime_area.check_cwd(requested, workspace=sandbox.workspace)
        if sandbox.jail is not None and requested.startswith("/"):
            normal = posixpath.normpath(requested)
            if normal == "/tmp" or normal.startswith("/tmp/"):
                return sandbox.workspace, normal
        path = Path(requested)
        if sandbox.jail is not None and path.is_relative_to("/sandbox"):
            path = path.relative_to("/sandbox")  # the sandbox's root, as its code sees it
            requested = path.as_posix()
        if path.is_absolute():
            real_root = sandbox.root.resolve()
            resolved = path.resolve()
            if resolved.is_relative_to(real_root):
                requested = resolved.relative_to(real_root).as_posix()
            else:  # "/workspace" means <sandbox>/workspace
                requested = requested.lstrip("/")
        if requested in ("", "."):
            return sandbox.root.resolve(), None
        cwd = artifact_files.safe_join(sandbox.root, requested)
        cwd.mkdir(parents=True, exist_ok=True)
        if sandbox.jail is not None and self.confinement.as_root:
            for directory in (cwd, *cwd.parents):
                if not directory.is_relative_to(sandbox.root):
                    break
                os.lchown(directory, sandbox.jail.uid, sandbox.jail.uid)
        return cwd, None

    async def create_context(
        self, sandbox_id: str, *, language: str | None, cwd: str | None
    ) -> dict[str, Any]:
        sandbox = self.sandbox(sandbox_id)
        choice = resolve_language(
            language, self.pool.spec_manager, confined=self.confinement.active
        )
        directory, seen_as = self._context_cwd(sandbox, cwd)
        context = await self._start_context(sandbox, choice, directory, seen_as)
        return context.to_json()

    async def _start_context(
        self, sandbox: LiveSandbox, choice: KernelChoice, cwd: Path, seen_as: str | None = None
    ) -> ContextRuntime:
        """A context in ``cwd`` (``seen_as``: where the code sees it, if not ``cwd``)."""
        if seen_as is not None:
            code_cwd = seen_as
        elif sandbox.jail is not None:
            code_cwd = self.confinement.inside(sandbox.jail, cwd)
        else:
            code_cwd = str(cwd)
        live = sum(len(other.contexts) for other in self.sandboxes.values())
        if live + self._starting >= self.config.max_contexts:
            raise ApiError(
                503,
                CAPACITY_EXCEEDED,
                f"This server runs its maximum of {self.config.max_contexts} contexts; "
                "delete one (or a sandbox) or try again later.",
                retryable=True,
                headers={"Retry-After": "5"},
            )
        seen_as = WORKSPACE if sandbox.jail is not None else None
        env = {**runtime_area.kernel_env(sandbox.workspace, seen_as=seen_as), **sandbox.envs}
        if sandbox.jail is not None and self.confinement.as_root:
            # The package area is made here, by the server: hand it to the sandbox's uid
            # so that ``pip install`` in the confined kernel can write to it.
            site = Path(runtime_area.site_packages(str(sandbox.workspace)))
            for directory in (site, *site.parents):
                if directory == sandbox.workspace:
                    break
                os.lchown(directory, sandbox.jail.uid, sandbox.jail.uid)
        self._starting += 1
        try:
            kernel = await self._take_warm(sandbox, choice, cwd, code_cwd, env)
            if kernel is None:
                async with self._starts:  # cold starts take turns instead of all at once
                    kernel = await self.pool.acquire(
                        choice, cwd=cwd, env=env, jail=sandbox.jail, code_cwd=code_cwd
                    )
        except Exception as error:
            log.exception("could not start a kernel")
            raise ApiError(
                503,
                CAPACITY_EXCEEDED,
                f"Could not start a kernel: {error}",
                retryable=True,
                headers={"Retry-After": "5"},
            ) from error
        finally:
            self._starting -= 1

        async def prepare(restarted: Kernel) -> None:
            if choice.is_own_python:
                await prepare_python(restarted, cwd=code_cwd, env=env)

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
            shown_cwd=code_cwd,
            memory_limit_mb=sandbox.jail.limits.memory_mb if sandbox.jail else None,
            oom_kills=sandbox.jail.cgroup.oom_kills
            if sandbox.jail is not None and sandbox.jail.cgroup is not None
            else None,
        )
        if sandbox.id not in self.sandboxes:  # deleted while the kernel started
            await context.close(cancelled("the sandbox was deleted"))
            await self.pool.release(kernel)
            raise ApiError.not_found(f"Sandbox {sandbox.id} was deleted.")
        sandbox.contexts[context.id] = context
        return context

    async def _take_warm(
        self,
        sandbox: LiveSandbox,
        choice: KernelChoice,
        cwd: Path,
        code_cwd: str,
        env: dict[str, str],
    ) -> Kernel | None:
        """The sandbox's own warm kernel, given its limits and envs (a first Python context)."""
        kernel, sandbox.warm = sandbox.warm, None
        if kernel is None:
            return None
        if not choice.is_own_python or cwd != sandbox.workspace or sandbox.jail is None:
            sandbox.warm = kernel
            return None
        try:
            await kernel.reconfine(sandbox.jail, env)
            await prepare_python(kernel, cwd=code_cwd, env=env)
        except Exception:
            log.warning("a warm kernel could not be used; starting another", exc_info=True)
            self._spawn(self.pool.release(kernel))
            return None
        return kernel

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
        choice = resolve_language(
            language, self.pool.spec_manager, confined=self.confinement.active
        )
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
        self,
        context: ContextRuntime,
        *,
        code: str,
        envs: dict[str, str],
        timeout: int | None,
        keep_processes: bool = False,
    ) -> RunState:
        run = RunState(
            id=new_id("run"),
            sandbox_id=context.sandbox_id,
            context_id=context.id,
            code=code,
            envs=envs,
            timeout_secs=timeout or self.config.default_run_timeout,
            retention=self._retention,
            keep_processes=keep_processes,
        )
        self.runs[run.id] = run
        self.store.put_run(run.to_json())
        sandbox = self.sandboxes.get(context.sandbox_id)
        if sandbox is not None:
            sandbox.last_active = time.monotonic()
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
