"""Real Jupyter kernels: start, execute with our own message routing, interrupt, restart.

`Kernel` wraps one `AsyncKernelManager` and its client. Two small pump tasks read the
shell and IOPub channels and hand each message to the execution that sent the
request (matched by ``parent_header.msg_id``), so nothing is read twice and stale
messages are dropped. `KernelPool` keeps a few Python kernels started and idle so a
new context gets one at once, and refills in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypedDict, Unpack

from jupyter_client.manager import AsyncKernelManager

from sandbox_magic.server import charts, kernel_side, runtime_area
from sandbox_magic.server.confined_manager import ConfinedKernelManager
from sandbox_magic.server.confinement import Confinement, Jail, lower_limits_code
from sandbox_magic.server.kernelspecs import (
    PYTHON_SPEC_NAME,
    KernelChoice,
    SandboxKernelSpecManager,
)
from sandbox_magic.server.languages import (
    helper_depth,
    kernel_transport,
    sends_output_after_idle,
)
from sandbox_magic.server.leftover_threads import KEEP_NEXT_CODE, WATCH_CODE
from sandbox_magic.server.network import SandboxNetwork
from sandbox_magic.server.runtime_dirs import make_runtime_dir, remove_stale_runtime_dirs
from sandbox_magic.server.strays import helpers, kernel_pid, kill_strays

__all__ = ["CREDENTIAL_VARIABLES", "Kernel", "KernelDiedError", "KernelPool", "MessageHook"]

#: The service's credentials, as its tools name them: never passed on to sandbox code.
CREDENTIAL_VARIABLES: Final = frozenset(
    {"NULLSPACE_API_KEY", "NULLSPACE_TOKEN", "NULLSPACE_API_URL", "NULLSPACE_BASE_URL"}
)

log = logging.getLogger(__name__)

#: Called with ``(msg_type, content, metadata)`` for every IOPub message of an execution.
MessageHook = Callable[[str, dict[str, Any], dict[str, Any]], None]

_READY_TIMEOUT: Final = 60.0
_ALIVE_CHECK_INTERVAL: Final = 1.0
_LOST_REPLY_GRACE: Final = 1.0
_ROUND_TRIP_TIMEOUT: Final = 5.0


class KernelDiedError(RuntimeError):
    """The kernel process exited (or was restarted) while a request was pending."""


@dataclass(eq=False)
class _Pending:
    hook: MessageHook | None
    reply: asyncio.Future[dict[str, Any]]
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event | None = None
    seen_iopub: asyncio.Event = field(default_factory=asyncio.Event)


class ExecuteOptions(TypedDict, total=False):
    """How to run code in a kernel (`Kernel.execute`)."""

    hook: MessageHook | None
    silent: bool
    user_expressions: Mapping[str, str] | None
    started: asyncio.Event | None


@dataclass(frozen=True)
class SentExecution:
    """An execute request on its way to the kernel (see `Kernel.send_execute`)."""

    msg_id: str
    pending: _Pending
    silent: bool


class Kernel:
    """One running kernel and the channels to talk to it."""

    def __init__(
        self, manager: AsyncKernelManager, choice: KernelChoice, directory: Path | None = None
    ) -> None:
        self.manager = manager
        self.choice = choice
        self.directory = directory
        #: The sandbox a confined kernel was started for.
        self.jail: Jail | None = None
        #: The host pid of a confined kernel's own process, and of bwrap above it.
        self._inner_pid: int | None = None
        self._inner_of: int | None = None
        self._client: Any = None
        self._pending: dict[str, _Pending] = {}
        self._pumps: list[asyncio.Task[None]] = []
        self._pgid: int | None = None
        #: A confined kernel's way out, when its sandbox has internet access.
        self._network: SandboxNetwork | None = None

    # -- lifecycle -------------------------------------------------------------------

    @classmethod
    async def start(
        cls,
        choice: KernelChoice,
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        spec_manager: SandboxKernelSpecManager,
        runtime_dir: Path,
        confinement: Confinement | None = None,
        jail: Jail | None = None,
        code_cwd: str | None = None,
    ) -> Kernel:
        """Start a kernel process in ``cwd`` and wait until it answers on both channels.

        ``code_cwd`` is where a confined kernel starts, as it sees it (by default
        ``cwd`` as mounted in its jail).

        Kernels talk over Unix sockets in a directory of their own under
        ``runtime_dir`` (private, and faster than loopback TCP; the few that cannot use
        loopback TCP). With an active ``confinement``, the kernel runs confined in
        ``jail``.
        """
        directory = runtime_dir / secrets.token_hex(4)
        confined = confinement is not None and confinement.active and jail is not None
        transport, ip = kernel_transport(choice.spec_name, directory / "k", confined=confined)
        options: dict[str, Any] = {
            "kernel_name": choice.spec_name,
            "kernel_spec_manager": spec_manager,
            "shutdown_wait_time": 1.0,
            "transport": transport,
            "ip": ip,
            "connection_file": str(directory / "kernel.json"),
        }
        if confinement is not None and confinement.active and jail is not None:
            confinement.prepare_kernel_dir(jail, directory)
            confined_manager = ConfinedKernelManager(**options)
            confined_manager.confine(
                confinement,
                jail,
                kernel_dir=directory,
                cwd=code_cwd or confinement.inside(jail, cwd),
                envs=dict(env or {}),
            )
            manager: AsyncKernelManager = confined_manager
        else:
            directory.mkdir(mode=0o700)
            manager = AsyncKernelManager(**options)
        kernel_env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARIABLES}
        kernel_env.update(env or {})
        try:
            await manager.start_kernel(cwd=str(cwd), env=kernel_env)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        kernel = cls(manager, choice, directory)
        if isinstance(manager, ConfinedKernelManager):
            kernel.jail = jail
        try:
            await kernel._connect()
            await kernel._enter_cgroup()
            await kernel._give_network()
        except BaseException:
            await kernel.shutdown()
            raise
        return kernel

    async def _connect(self) -> None:
        self._remember_pgid()
        client = self.manager.client()
        client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=False)
        self._client = client
        self._pumps = [
            asyncio.create_task(self._pump(client.get_shell_msg), name="kernel-shell"),
            asyncio.create_task(self._pump(client.get_iopub_msg), name="kernel-iopub"),
        ]
        await self._wait_ready()

    async def _enter_cgroup(self) -> None:
        """Move a confined kernel's processes into its sandbox's cgroups (before any code
        of the sandbox runs: whatever they start later is born inside)."""
        if self.jail is not None and self.jail.cgroup is not None and self.pid is not None:
            await asyncio.to_thread(self.jail.cgroup.adopt, self.pid)

    async def _give_network(self) -> None:
        """Attach the network of a confined kernel whose sandbox has internet access."""
        await self._take_network()
        manager, pid = self.manager, self.pid
        if not isinstance(manager, ConfinedKernelManager) or self.jail is None or pid is None:
            return
        if not self.jail.internet or not manager.confinement.slirp4netns:
            return
        inner = await asyncio.to_thread(kernel_pid, pid)
        self._network = await asyncio.to_thread(
            SandboxNetwork.attach, manager.confinement.slirp4netns, inner
        )

    async def _take_network(self) -> None:
        """Take a confined kernel's network away (slirp4netns may take a moment to exit:
        waited for off the event loop)."""
        network, self._network = self._network, None
        if network is not None:
            await asyncio.to_thread(network.close)

    def _remember_pgid(self) -> None:
        provisioner = self.manager.provisioner
        pgid = getattr(provisioner, "pgid", None)
        self._pgid = pgid if isinstance(pgid, int) else None

    async def _wait_ready(self) -> None:
        """Nudge with kernel_info until the reply *and* an IOPub message arrive.

        Seeing IOPub traffic proves our subscription is live, so no output of the
        first run can be lost.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT
        while True:
            if not await self.is_alive():
                raise KernelDiedError("the kernel exited while starting")
            msg_id = self._client.kernel_info()
            pending = _Pending(hook=None, reply=loop.create_future())
            self._pending[msg_id] = pending
            try:
                await asyncio.wait_for(pending.reply, timeout=1.0)
                await asyncio.wait_for(pending.seen_iopub.wait(), timeout=0.5)
                return
            except TimeoutError:
                if loop.time() > deadline:
                    raise KernelDiedError("the kernel did not answer within 60 s") from None
            finally:
                self._pending.pop(msg_id, None)

    async def shutdown(self) -> None:
        """Stop the kernel and everything it started (its whole process group)."""
        self._fail_pending("the kernel was shut down")
        for task in self._pumps:
            task.cancel()
        for task in self._pumps:
            with contextlib.suppress(BaseException):
                await task
        self._pumps = []
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.stop_channels()
        with contextlib.suppress(Exception):
            if self.manager.has_kernel:
                await self.manager.shutdown_kernel(now=False)
        self._kill_group()
        await self._take_network()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def _kill_group(self) -> None:
        if self._pgid is not None and self._pgid > 1 and hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(self._pgid, signal.SIGKILL)

    async def restart(self) -> None:
        """Kill and start the kernel again (same ports); its state is lost."""
        self._fail_pending("the kernel was restarted")
        await self._take_network()
        await self.manager.restart_kernel(now=True)
        self._remember_pgid()
        await self._wait_ready()
        await self._enter_cgroup()
        await self._give_network()

    @property
    def confined(self) -> bool:
        return isinstance(self.manager, ConfinedKernelManager)

    async def reconfine(self, jail: Jail, envs: Mapping[str, str]) -> None:
        """Give a warm confined kernel its sandbox's limits and ``envs``, now and on restarts."""
        manager = self.manager
        if not isinstance(manager, ConfinedKernelManager) or self.pid is None:
            return
        manager.confine(
            manager.confinement,
            jail,
            kernel_dir=manager.kernel_dir,
            cwd=manager.confinement.inside(jail, jail.workspace),
            envs=dict(envs),
        )
        self.jail = jail
        await self._give_network()
        reply = await self.execute(
            lower_limits_code(jail.limits, pin=not jail.cpu_quota), silent=True
        )
        if reply.get("status") != "ok":
            raise KernelDiedError(f"could not set the sandbox's limits: {reply.get('evalue', '')}")

    async def keep_next_leftovers(self) -> None:
        """Let the next run leave threads and processes running (own Python, confined)."""
        if self.confined and self.choice.is_own_python:
            await self.execute(KEEP_NEXT_CODE, silent=True)

    async def stop_leftovers(self) -> None:
        """Stop the processes the last run left running (confined kernels).

        An own Python kernel has already stopped its threads and processes itself, at
        the end of the run's cell (see `leftover_threads`).
        """
        if self.confined and not self.choice.is_own_python:
            await self.kill_strays()

    async def kill_strays(self) -> int:
        """Kill the processes the code left running (confined kernels only); how many."""
        pid = self.pid
        if not self.confined or pid is None:
            return 0
        manager = self.manager
        if (
            isinstance(manager, ConfinedKernelManager)
            and manager.confinement.as_root
            and self.jail is not None
        ):
            if self._inner_pid is None or self._inner_of != pid:
                self._inner_pid = await asyncio.to_thread(kernel_pid, pid)
                self._inner_of = pid
            uid, inner = self.jail.uid, self._inner_pid
            keep = await self._helpers(inner)
            return await asyncio.to_thread(kill_strays, pid, uid=uid, kernel=inner, keep=keep)
        try:
            keep = await self._helpers(await asyncio.to_thread(kernel_pid, pid))
        except ProcessLookupError:
            keep = set()
        return await asyncio.to_thread(kill_strays, pid, keep=keep)

    async def _helpers(self, inner: int) -> set[int]:
        """The processes the kernel runs its language in (never strays)."""
        depth = helper_depth(self.choice.spec_name)
        if depth == 0:
            return set()
        return await asyncio.to_thread(helpers, inner, depth)

    async def interrupt(self) -> None:
        """Interrupt the running code, as a notebook's stop button does."""
        with contextlib.suppress(RuntimeError):
            await self.manager.interrupt_kernel()

    async def is_alive(self) -> bool:
        alive: bool = await self.manager.is_alive()
        return alive

    @property
    def pid(self) -> int | None:
        provisioner = self.manager.provisioner
        process = getattr(provisioner, "process", None)
        pid = getattr(process, "pid", None)
        return pid if isinstance(pid, int) else None

    # -- messages --------------------------------------------------------------------

    async def _pump(self, receive: Callable[..., Any]) -> None:
        while True:
            try:
                msg = await receive()
            except asyncio.CancelledError:
                raise
            except Exception:  # a malformed message: skip it
                log.debug("dropping an unreadable kernel message", exc_info=True)
                continue
            self._route(msg)

    def _route(self, msg: dict[str, Any]) -> None:
        parent = msg.get("parent_header") or {}
        pending = self._pending.get(parent.get("msg_id", ""))
        if pending is None:
            return
        msg_type = msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")
        content = msg.get("content") or {}
        if msg_type.endswith("_reply"):
            if not pending.reply.done():
                pending.reply.set_result(content)
            return
        pending.seen_iopub.set()
        if msg_type == "execute_input" and pending.started is not None:
            pending.started.set()
        if msg_type == "status":
            if content.get("execution_state") == "idle":
                pending.idle.set()
            return
        if pending.hook is not None:
            try:
                pending.hook(msg_type, content, msg.get("metadata") or {})
            except Exception:
                log.exception("output hook failed on a %s message", msg_type)

    def _fail_pending(self, reason: str) -> None:
        for pending in self._pending.values():
            if not pending.reply.done():
                pending.reply.set_exception(KernelDiedError(reason))
            pending.idle.set()
        self._pending.clear()

    async def execute(self, code: str, **options: Unpack[ExecuteOptions]) -> dict[str, Any]:
        """Run ``code``; feed every IOPub output to ``options["hook"]``; return the reply.

        ``started`` is set when the kernel begins executing this code (its
        ``execute_input``): from then on an interrupt reaches the code.

        Returns once both the reply and the kernel's ``idle`` status for this request
        have arrived, so every output has been handed to the hook. Raises
        `KernelDiedError` if the kernel exits or is restarted meanwhile.
        """
        return await self.finish_execute(self.send_execute(code, **options))

    def send_execute(self, code: str, **options: Unpack[ExecuteOptions]) -> SentExecution:
        """The first half of `execute`: the request goes to the kernel now."""
        silent = options.get("silent", False)
        msg_id: str = self._client.execute(
            code,
            silent=silent,
            store_history=not silent,
            user_expressions=dict(options.get("user_expressions") or {}),
            allow_stdin=False,
            stop_on_error=False,
        )
        reply = asyncio.get_running_loop().create_future()
        pending = _Pending(hook=options.get("hook"), reply=reply, started=options.get("started"))
        self._pending[msg_id] = pending
        return SentExecution(msg_id, pending, silent)

    def forget(self, sent: SentExecution) -> None:
        """Stop routing messages of a sent request (`finish_execute` does it itself)."""
        self._pending.pop(sent.msg_id, None)

    async def finish_execute(self, sent: SentExecution) -> dict[str, Any]:
        """The second half of `execute`: wait for the reply (and the ``idle``)."""
        pending = sent.pending
        try:
            if sent.silent:
                reply: dict[str, Any] = await self._await_alive(pending.reply)
                return reply
            idle = asyncio.ensure_future(pending.idle.wait())
            try:
                await self._await_alive(
                    asyncio.wait({pending.reply, idle}, return_when="FIRST_COMPLETED")
                )
                if not pending.reply.done():
                    # Idle without a reply: an interrupt landed in the kernel's own code
                    # and the request was dropped. Allow the reply a moment, then give up.
                    await asyncio.wait({pending.reply}, timeout=_LOST_REPLY_GRACE)
                    if not pending.reply.done():
                        return {"status": "aborted", "lost": True}
                reply = pending.reply.result()
                await self._await_alive(idle)
                if sends_output_after_idle(self.choice.spec_name):
                    await self._round_trip()
                return reply
            finally:
                idle.cancel()
        finally:
            self._pending.pop(sent.msg_id, None)

    async def _round_trip(self) -> None:
        """Ask for kernel_info and wait for its ``idle``: IOPub output sent before it is in.

        For kernels that publish an execution's last output after its ``idle``.
        """
        msg_id = self._client.kernel_info()
        pending = _Pending(hook=None, reply=asyncio.get_running_loop().create_future())
        self._pending[msg_id] = pending
        try:
            await self._await_alive(asyncio.wait_for(pending.idle.wait(), _ROUND_TRIP_TIMEOUT))
        except TimeoutError:
            log.warning("kernel %s did not answer kernel_info in time", self.choice.spec_name)
        finally:
            self._pending.pop(msg_id, None)

    async def _await_alive(self, awaitable: Any) -> Any:
        """Await, checking now and then that the kernel process still exists."""
        future = asyncio.ensure_future(awaitable)
        try:
            while True:
                done, _ = await asyncio.wait({future}, timeout=_ALIVE_CHECK_INTERVAL)
                if done:
                    return future.result()
                if not await self.is_alive():
                    raise KernelDiedError("the kernel process exited")
        finally:
            if not future.done():
                future.cancel()


class KernelPool:
    """Starts kernels, keeping ``size`` idle Python kernels ready for new contexts."""

    def __init__(
        self,
        *,
        size: int,
        idle_dir: Path,
        confinement: Confinement | None = None,
        new_jail: Callable[[], Jail] | None = None,
    ) -> None:
        self.confinement = confinement
        #: Under isolation a kernel is started for one sandbox (its mounts and uid), so
        #: warm kernels come with a sandbox of their own, made by ``new_jail``; a new
        #: sandbox takes one (`take_warm`) for its first Python context.
        self._new_jail = new_jail if confinement is not None and confinement.active else None
        self.size = size if self._new_jail is not None or not _confined(confinement) else 0
        self.spec_manager = SandboxKernelSpecManager()
        self._idle_dir = idle_dir
        remove_stale_runtime_dirs()
        self.runtime_dir = make_runtime_dir()
        self._ready: list[Kernel] = []
        self._starting: set[asyncio.Task[Kernel]] = set()
        self._waiters: list[asyncio.Future[Kernel]] = []
        self._live: set[Kernel] = set()
        self._discarding: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def ready_count(self) -> int:
        """Warm kernels ready right now."""
        return len(self._ready)

    @property
    def python(self) -> KernelChoice:
        return KernelChoice(PYTHON_SPEC_NAME, "python")

    def start(self) -> None:
        """Begin warming kernels in the background."""
        self._idle_dir.mkdir(parents=True, exist_ok=True)
        self._refill()

    def _refill(self) -> None:
        if self._closed:
            return
        missing = self.size + len(self._waiters) - len(self._ready) - len(self._starting)
        for _ in range(max(0, missing)):
            task = asyncio.create_task(self._start_one(), name="kernel-warm")
            self._starting.add(task)
            task.add_done_callback(self._warmed)

    async def _start_one(self) -> Kernel:
        jail = None
        cwd = self._idle_dir
        if self._new_jail is not None and self.confinement is not None:
            jail = await asyncio.to_thread(self._new_jail)
            await asyncio.to_thread(self.confinement.prepare, jail)
            cwd = jail.workspace
        try:
            kernel = await Kernel.start(
                self.python,
                cwd=cwd,
                spec_manager=self.spec_manager,
                runtime_dir=self.runtime_dir,
                confinement=self.confinement,
                jail=jail,
            )
        except BaseException:
            if jail is not None:
                shutil.rmtree(jail.root, ignore_errors=True)
            raise
        self._live.add(kernel)
        return kernel

    def take_warm(self) -> Kernel | None:
        """Under isolation: a warm kernel with the sandbox made for it, if one is ready."""
        if self._new_jail is None or not self._ready or self._closed:
            return None
        kernel = self._ready.pop(0)
        self._refill()
        return kernel

    def _warmed(self, task: asyncio.Task[Kernel]) -> None:
        self._starting.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            log.error("could not start a warm kernel: %s", error)
            while self._waiters:
                waiter = self._waiters.pop(0)
                if not waiter.done():
                    waiter.set_exception(error)
            return
        kernel = task.result()
        if self._closed:
            discard = asyncio.get_running_loop().create_task(self._discard(kernel))
            self._discarding.add(discard)
            discard.add_done_callback(self._discarding.discard)
            return
        while self._waiters:
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(kernel)
                self._refill()
                return
        self._ready.append(kernel)

    async def acquire(
        self,
        choice: KernelChoice,
        *,
        cwd: Path,
        env: Mapping[str, str],
        jail: Jail | None = None,
        code_cwd: str | None = None,
    ) -> Kernel:
        """A kernel for a new context: a warm one for Python, else a cold start in ``cwd``.

        A warm kernel is moved into ``cwd`` and given ``env`` (see `prepare_python`);
        a cold one starts there with ``env``, confined in ``jail`` if isolation is on.
        ``code_cwd`` is ``cwd`` as the code sees it.
        """
        if self._closed:
            raise RuntimeError("the server is shutting down")
        code_cwd = code_cwd or str(cwd)
        if not choice.is_own_python or self.size <= 0 or self._new_jail is not None:
            kernel = await Kernel.start(
                choice,
                cwd=cwd,
                env=env,
                spec_manager=self.spec_manager,
                runtime_dir=self.runtime_dir,
                confinement=self.confinement,
                jail=jail,
                code_cwd=code_cwd,
            )
            self._live.add(kernel)
            if choice.is_own_python:
                await prepare_python(kernel, cwd=code_cwd, env=env)
            return kernel
        if self._ready:
            kernel = self._ready.pop(0)
            self._refill()
        else:
            waiter: asyncio.Future[Kernel] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            self._refill()
            kernel = await waiter
        await prepare_python(kernel, cwd=code_cwd, env=env)
        return kernel

    async def release(self, kernel: Kernel) -> None:
        """Shut a kernel down for good."""
        await self._discard(kernel)

    async def _discard(self, kernel: Kernel) -> None:
        self._live.discard(kernel)
        await kernel.shutdown()

    async def close(self) -> None:
        """Shut down every kernel this pool ever started, warm or in use."""
        self._closed = True
        for task in list(self._starting):
            task.cancel()
        for task in list(self._starting):
            with contextlib.suppress(BaseException):
                await task
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(RuntimeError("the server is shutting down"))
        kernels = list(self._live)
        unused = [k.jail.root for k in self._ready if k.jail is not None]
        self._live.clear()
        self._ready.clear()
        await asyncio.gather(*(k.shutdown() for k in kernels), return_exceptions=True)
        for root in unused:  # sandboxes made for warm kernels nobody took
            shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)


def _confined(confinement: Confinement | None) -> bool:
    return confinement is not None and confinement.active


async def prepare_python(kernel: Kernel, *, cwd: str | Path, env: Mapping[str, str]) -> None:
    """Move a Python kernel into ``cwd``, set ``env``, put the sandbox's own packages
    first on ``sys.path``, install the chart formatter and set the kernel up for sandbox
    use (see `runtime_area`, `charts`, `kernel_side`); a confined kernel also starts
    watching the threads runs start (see `leftover_threads`).

    Leaves no names behind in the user's namespace.
    """
    code = (
        f"__import__('os').makedirs({str(cwd)!r}, exist_ok=True); "
        f"__import__('os').chdir({str(cwd)!r}); __import__('os').environ.update({dict(env)!r})\n"
        f"{runtime_area.ACTIVATE_CODE}\n{charts.kernel_code()}\n{kernel_side.kernel_code()}"
    )
    if kernel.confined:
        code += f"\n{WATCH_CODE}"
    reply = await kernel.execute(code, silent=True)
    if reply.get("status") != "ok":
        raise KernelDiedError(f"could not prepare the kernel: {reply.get('evalue', '')}")
