"""Fairness between keys: round-robin kernel starts and CPU demotion of long runs.

`FairGate` hands out a few slots (kernel starts are CPU-heavy: 60 at once all time
out together) one name at a time, in turn, so a student starting ten contexts waits
behind the others' first ones rather than in front of them.

`CpuDemoter` watches running runs: one that has used `DEMOTE_AFTER` seconds of CPU is
a CPU loop as far as the class is concerned (a sleeping run is not). If another name
has run something within `SHARED_WINDOW` seconds (a lone user is left alone), it gets
a lower CPU priority (nice 16, plus 1 per further long run of the same name, up to
19), so trivial cells of everybody else keep getting the CPU at once. Where the
sandbox has a ``cpu`` cgroup (`sandbox_magic.server.cgroups`), the priority is its
``cpu.shares`` (the weight nice would give): between cgroups the scheduler weighs
groups, not the nice of the processes inside. Where the machine allows, the sandbox
also moves to the idle ``cpu`` tree beside the server's, so that it runs only on time
the server and the other sandboxes do not want. Without a cgroup, the kernel's
processes are reniced, and so is its session's autogroup where the scheduler groups
by session (each kernel has a session of its own, so its nice alone would weigh only
against itself). Its threads also get
``SCHED_IDLE``: whatever the weights, other work preempts them at once. A kernel goes
back to normal priority `KEEP_DEMOTED` seconds after its long run ended, so a loop
started again at once does not get a full-priority head start. Raising a priority
back needs ``CAP_SYS_NICE`` (root); without it a demoted kernel stays demoted until
its context is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sandbox_magic.server.classroom.usage import cpu_seconds, process_tree

if TYPE_CHECKING:
    from sandbox_magic.server.cgroups import SandboxCgroup
    from sandbox_magic.server.runs import RunState
    from sandbox_magic.server.service import SandboxService

__all__ = ["DEMOTE_AFTER", "KEEP_DEMOTED", "SHARED_WINDOW", "CpuDemoter", "FairGate"]

log = logging.getLogger(__name__)

#: CPU seconds a run may use before it counts as a CPU loop (a trivial cell uses ~0.01).
DEMOTE_AFTER: Final = 0.25
#: Seconds a kernel stays demoted after its long run ended: a loop run again at once
#: starts behind the others instead of at full priority until it is caught again.
KEEP_DEMOTED: Final = 5.0
#: Seconds since another name's last run within which a CPU loop yields to it. With
#: nobody else about (one user, the embedded server) a loop keeps its full priority.
SHARED_WINDOW: Final = 60.0
_BASE_NICE: Final = 16
_STEP_NICE: Final = 1
_CHECK_EVERY: Final = 0.2


class FairGate:
    """At most ``slots`` holders at once; waiters are served one name at a time, in turn."""

    def __init__(self, slots: int) -> None:
        self._free = slots
        self._waiting: OrderedDict[str, deque[asyncio.Future[None]]] = OrderedDict()

    @property
    def waiting(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    @contextlib.asynccontextmanager
    async def slot(self, name: str) -> AsyncIterator[None]:
        if self._free > 0 and not self._waiting:
            self._free -= 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(name, deque()).append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # it was handed a slot just as it gave up
                else:
                    self._forget(name, future)
                raise
        try:
            yield
        finally:
            self._release()

    def _forget(self, name: str, future: asyncio.Future[None]) -> None:
        queue = self._waiting.get(name)
        if queue is not None and future in queue:
            queue.remove(future)
            if not queue:
                del self._waiting[name]

    def _release(self) -> None:
        while self._waiting:
            name, queue = next(iter(self._waiting.items()))
            future = queue.popleft()
            del self._waiting[name]
            if queue:  # this name goes to the back of the line
                self._waiting[name] = queue
            if not future.done():
                future.set_result(None)
                return
        self._free += 1


class CpuDemoter:
    """Lowers the CPU priority of kernels whose run keeps a core busy."""

    def __init__(self, service: SandboxService, owner_of: Callable[[str], str]) -> None:
        self._service = service
        self._owner_of = owner_of
        self._cpu_at_start: dict[str, float] = {}
        self._first_seen: dict[str, float] = {}
        self._demoted: dict[int, int] = {}  # kernel pid -> nice given
        self._release_at: dict[int, float] = {}  # demoted kernel, its long run over -> when
        self._long: set[str] = set()  # runs found to be CPU loops
        self._cgroups: dict[int, SandboxCgroup] = {}  # kernel pid -> its sandbox's cgroups
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch(), name="cpu-demoter")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        for pid in list(self._demoted):
            try:
                self._prioritise(pid, 0)
            except Exception:  # the server's own shutdown must go on
                log.exception("the CPU demoter could not restore kernel %d", pid)
            del self._demoted[pid]
        self._release_at.clear()

    def niceness(self) -> dict[str, int]:
        """Run id -> nice level given to its kernel, for the dashboard."""
        shown: dict[str, int] = {}
        for run in self._service.runs.values():
            pid = self._pid_of(run) if run.status == "running" else None
            if pid is not None and pid in self._demoted:
                shown[run.id] = self._demoted[pid]
        return shown

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_CHECK_EVERY)
            try:
                self.check()
            except Exception:  # never let bookkeeping stop the watcher
                log.exception("the CPU demoter failed a round")

    def check(self) -> None:
        """One round: demote CPU-hungry runs, restore kernels whose long run ended."""
        running = [run for run in self._service.runs.values() if run.status == "running"]
        ids = {run.id for run in running}
        for run_id in [r for r in self._first_seen if r not in ids]:
            self._first_seen.pop(run_id, None)
            self._cpu_at_start.pop(run_id, None)
            self._long.discard(run_id)
        moment = time.monotonic()
        long_by_name: dict[str, int] = {}
        wanted: dict[int, int] = {}
        active = self._active_names(moment - SHARED_WINDOW)
        for run in sorted(running, key=lambda r: r.started_at or ""):
            if moment - self._first_seen.setdefault(run.id, moment) < _CHECK_EVERY:
                continue  # most cells end before this: read nothing for them
            pid = self._pid_of(run)
            if pid is None or pid == os.getpid():
                continue
            if run.id not in self._long:  # once long, a run stays long: read no more
                used = cpu_seconds(pid)
                if (
                    used is None
                    or used - self._cpu_at_start.setdefault(run.id, used) < DEMOTE_AFTER
                ):
                    continue
                self._long.add(run.id)
            name = self._owner_of(run.sandbox_id)
            if not active - {name}:
                continue  # nobody else to be fair to
            if (cgroup := self._cpu_cgroup_of(run)) is not None:
                self._cgroups[pid] = cgroup
            count = long_by_name.get(name, 0)
            long_by_name[name] = count + 1
            wanted[pid] = min(19, _BASE_NICE + _STEP_NICE * count)
        for pid, nice in wanted.items():
            self._release_at.pop(pid, None)
            if self._demoted.get(pid) != nice:
                self._prioritise(pid, nice)
                self._demoted[pid] = nice
        for pid in [p for p in self._demoted if p not in wanted]:
            if moment < self._release_at.setdefault(pid, moment + KEEP_DEMOTED):
                continue
            self._prioritise(pid, 0)
            del self._demoted[pid], self._release_at[pid]
        self._cgroups = {p: c for p, c in self._cgroups.items() if p in self._demoted}

    def _prioritise(self, pid: int, nice: int) -> None:
        """Give kernel ``pid`` that priority: its sandbox's CPU weight, or its nice."""
        cgroup = self._cgroups.get(pid)
        if cgroup is None:
            _renice(pid, nice)
        else:  # the sandbox as a whole: as low as its lowest demoted kernel
            lowest = max([nice, *self._sandbox_mates(pid, cgroup)])
            cgroup.set_cpu_weight(_weight(lowest))
            cgroup.set_idle(lowest > 0)
        _set_idle_policy(pid, idle=nice > 0)

    def _sandbox_mates(self, pid: int, cgroup: SandboxCgroup) -> list[int]:
        """The nice levels of the other demoted kernels in ``cgroup``."""
        return [
            self._demoted[kernel]
            for kernel, other in self._cgroups.items()
            if other is cgroup and kernel != pid and kernel in self._demoted
        ]

    def _active_names(self, since: float) -> set[str]:
        """The names whose sandboxes ran something since ``since`` (``time.monotonic``)."""
        return {
            self._owner_of(sandbox_id)
            for sandbox_id, sandbox in self._service.sandboxes.items()
            if sandbox.last_active >= since
        }

    def _pid_of(self, run: RunState) -> int | None:
        """The pid of the kernel running ``run`` (None once its context is gone)."""
        sandbox = self._service.sandboxes.get(run.sandbox_id)
        context = sandbox.contexts.get(run.context_id) if sandbox else None
        return context.kernel.pid if context is not None else None

    def _cpu_cgroup_of(self, run: RunState) -> SandboxCgroup | None:
        """The ``cpu`` cgroup of the sandbox of ``run``, where it has one."""
        sandbox = self._service.sandboxes.get(run.sandbox_id)
        cgroup = sandbox.jail.cgroup if sandbox is not None and sandbox.jail else None
        return cgroup if cgroup is not None and "cpu" in cgroup.directories else None


def _weight(nice: int) -> int:
    """The CFS weight of a nice level, as ``cpu.shares`` (1024 at nice 0)."""
    return max(2, round(1024 / 1.25**nice))


def _renice(pid: int, nice: int) -> None:
    """Set the nice level of a kernel and every process below it (a wrapper's child too).

    With autogroup scheduling on (most desktop and many server kernels) a process's
    nice only weighs against processes of its own session, and each kernel runs in a
    session of its own: there the session's autogroup is what gets the nice level.
    """
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, member, nice)
    _renice_autogroup(pid, nice)


def _set_idle_policy(pid: int, *, idle: bool) -> None:
    """Put every thread of the kernel's processes under ``SCHED_IDLE`` (or back).

    A waking task preempts an idle-policy one at once, and a core running only such
    tasks counts as free when a waking task picks one: a demoted loop then runs only
    on time nobody else wants, whatever the weights of the groups around it.
    """
    policy = os.SCHED_IDLE if idle else os.SCHED_OTHER
    for member in process_tree(pid):
        try:
            threads = os.listdir(f"/proc/{member}/task")
        except OSError:
            continue
        for thread in threads:
            with contextlib.suppress(OSError, ValueError):
                os.sched_setscheduler(int(thread), policy, os.sched_param(0))


def _autogroup(pid: int | str) -> str | None:
    """The autogroup a process is scheduled in (None when autogroups are off)."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()[0]
    except (OSError, IndexError):
        return None


def _renice_autogroup(pid: int, nice: int) -> None:
    """Give the kernel's own autogroup ``nice`` (never the server's: that would demote it)."""
    group = _autogroup(pid)
    if group is None or group == _autogroup("self"):
        return
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))
