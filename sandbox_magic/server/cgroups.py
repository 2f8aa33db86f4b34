"""Limits per sandbox as a whole, with cgroup v1 where this server may write them.

rlimits (see `confinement`) hold each process of a sandbox; a cgroup holds all of them
together. Under a server started as root on a machine whose cgroup v1 ``memory`` and
``pids`` hierarchies are writable (``cpu`` too, if there), each sandbox gets one cgroup
per hierarchy, below the server's own cgroup::

    <hierarchy>/<the server's cgroup>/sandbox-magic-<server pid>/<sandbox id>

with ``memory.limit_in_bytes`` (and ``memory.memsw.limit_in_bytes``, so swap is no way
around it) at the sandbox's memory, ``pids.max`` at its processes and, with ``cpu``, a
CFS quota of ``vcpus`` CPUs; ``cpuacct``, where there, counts its CPU time (the
teacher's dashboard shows it). A kernel starts inside them (`SandboxCgroup.joining`),
so its memory is charged to its sandbox from the first page; what it has started by
the time it is ready is moved in too, before any code of the sandbox runs, and
whatever starts later is born inside.
Deleting the sandbox kills what is left in it and removes the cgroup; a server that
was killed outright leaves its tree behind, and the next one removes it.

Where the kernel has ``cpu.idle`` (Linux 5.15 and later), the ``cpu`` hierarchy has a
second tree beside the first, ``sandbox-magic-idle-<server pid>``, marked idle, with a
twin of each sandbox's ``cpu`` cgroup. A sandbox demoted for keeping a core busy
(`sandbox_magic.server.classroom.fairness`) has its processes moved to its twin, with
the same CPU quota: the scheduler then gives it only time that the server and the
other sandboxes do not want, and they take its core at once when they wake (against
the rest of the machine its threads' ``SCHED_IDLE`` policy does that). Idle inside
the sandboxes' own tree would not do it: between the tree and the server the
scheduler weighs the tree as a whole, busy with the loop. Only where ``cpu`` is a
hierarchy of its own: mounted with ``memory`` or ``pids``, a move to the twin would
take the sandbox out of its memory and process limits.

Elsewhere (no root, cgroup v2 only, read-only hierarchies) `CgroupTree.create` gives
None and the rlimits stand alone; ``/healthz`` says which is in force.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shlex
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from sandbox_magic.server.strays import helpers

__all__ = ["CgroupTree", "SandboxCgroup"]

log = logging.getLogger(__name__)

_PREFIX: Final = "sandbox-magic-"
_IDLE_PREFIX: Final = f"{_PREFIX}idle-"
_REQUIRED: Final = ("memory", "pids")
_OPTIONAL: Final = ("cpu", "cpuacct")
_CFS_PERIOD_US: Final = 100_000
_KILL_ROUNDS: Final = 20
_MOVE_ROUNDS: Final = 5


def _mounts() -> dict[str, Path]:
    """Where each cgroup v1 controller is mounted."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) < 4 or parts[2] != "cgroup":
                continue
            for option in parts[3].split(","):
                if option in (*_REQUIRED, *_OPTIONAL):
                    found.setdefault(option, Path(parts[1]))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup in each v1 hierarchy (``/proc/self/cgroup``)."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(","):
                paths[controller] = path
    return paths


def _write(path: Path, value: str) -> None:
    path.write_text(value)


def _pids(directory: Path) -> list[int]:
    try:
        return [int(pid) for pid in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _kill_and_remove(directory: Path) -> None:
    """SIGKILL every process in a cgroup (and its children) and remove it, bottom up."""
    if not directory.is_dir():
        return
    for child in sorted((d for d in directory.iterdir() if d.is_dir()), reverse=True):
        _kill_and_remove(child)
    for _ in range(_KILL_ROUNDS):
        pids = _pids(directory)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    try:
        directory.rmdir()
    except OSError as error:  # a server started later removes it once it is empty
        log.warning("cgroups: cannot remove %s (%s)", directory, error)


def _move_all(source: Path, target: Path) -> bool:
    """Move every process of cgroup ``source`` to ``target`` (a few rounds, for forks);
    whether none is left behind."""
    for _ in range(_MOVE_ROUNDS):
        pids = _pids(source)
        if not pids:
            return True
        for pid in pids:
            try:
                _write(target / "cgroup.procs", str(pid))
            except (ProcessLookupError, FileNotFoundError):
                continue  # it has just ended, or the sandbox is being deleted
            except OSError as error:
                log.warning("cgroups: cannot move process %d to %s (%s)", pid, target, error)
                return False
    return not _pids(source)


@dataclass(frozen=True)
class SandboxCgroup:
    """One sandbox's cgroups (one directory per hierarchy), and where it has one, the
    twin of its ``cpu`` cgroup in the idle tree."""

    directories: dict[str, Path]
    idle_cpu: Path | None = None

    def set_limits(self, *, memory_mb: int, processes: int, vcpus: int) -> None:
        """Put the sandbox's limits in force (raising or lowering them)."""
        memory = self.directories["memory"]
        size = str(memory_mb * 1024 * 1024)
        swap = memory / "memory.memsw.limit_in_bytes"
        try:
            _write(memory / "memory.limit_in_bytes", size)
            if swap.exists():
                _write(swap, size)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
            _write(swap, size)  # raising: memory+swap first, then memory
            _write(memory / "memory.limit_in_bytes", size)
        _write(self.directories["pids"] / "pids.max", str(processes))
        for cpu in self._cpu_directories():
            _write(cpu / "cpu.cfs_period_us", str(_CFS_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(vcpus * _CFS_PERIOD_US))

    def _cpu_directories(self) -> list[Path]:
        """The sandbox's ``cpu`` cgroup and its twin: CPU settings go to both."""
        cpu = self.directories.get("cpu")
        return [] if cpu is None else [cpu, *filter(None, [self.idle_cpu])]

    def joining(self, command: Sequence[str]) -> list[str]:
        """``command``, started inside the sandbox's cgroups: a shell joins them and
        execs it. Memory is charged to the cgroup it is allocated in, and moving a
        started process does not move its charges (Linux has dropped that for cgroup
        v1), so a kernel joined only after it started would leave its interpreter
        charged to the server and its sandbox reading a few MB."""
        targets = dict.fromkeys(
            directory / "cgroup.procs" for directory in self.directories.values()
        )
        joins = " && ".join(f"echo $$ > {shlex.quote(str(target))}" for target in targets)
        return ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *command]

    def adopt(self, pid: int) -> None:
        """Move process ``pid`` and all its descendants into the sandbox's cgroups."""
        for member in (pid, *sorted(helpers(pid, None))):
            for directory in self.directories.values():
                with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                    _write(directory / "cgroup.procs", str(member))

    def set_cpu_weight(self, shares: int) -> None:
        """The sandbox's CPU weight against other sandboxes (``cpu.shares``, 1024 normal)."""
        for cpu in self._cpu_directories():
            with contextlib.suppress(OSError):
                _write(cpu / "cpu.shares", str(shares))

    def set_idle(self, idle: bool) -> None:
        """Move the sandbox's processes to its twin in the idle tree (or back). A kernel
        started meanwhile starts in the ``cpu`` cgroup, at the sandbox's lowered weight."""
        cpu = self.directories.get("cpu")
        if cpu is None or self.idle_cpu is None:
            return
        source, target = (cpu, self.idle_cpu) if idle else (self.idle_cpu, cpu)
        if not _move_all(source, target):
            log.warning("cgroups: some processes of %s stayed in %s", source.name, source)

    def usage(self) -> tuple[float | None, float | None]:
        """``(CPU seconds, memory bytes)`` the sandbox has used (None where not counted)."""
        cpu = memory = None
        with contextlib.suppress(OSError, ValueError, KeyError):
            memory = float((self.directories["memory"] / "memory.usage_in_bytes").read_text())
        if (cpuacct := self.directories.get("cpuacct")) is not None:
            counted = [cpuacct]
            if cpuacct == self.directories.get("cpu") and self.idle_cpu is not None:
                counted.append(self.idle_cpu)  # cpu and cpuacct mounted together
            with contextlib.suppress(OSError, ValueError):
                cpu = sum(int((d / "cpuacct.usage").read_text()) for d in counted) / 1e9
        return cpu, memory

    def oom_kills(self) -> int:
        """How many processes the kernel's OOM killer has killed in this sandbox."""
        with contextlib.suppress(OSError, ValueError):
            for line in (self.directories["memory"] / "memory.oom_control").read_text().split("\n"):
                name, _, value = line.partition(" ")
                if name == "oom_kill":
                    return int(value)
        return 0

    def remove(self) -> None:
        """Kill whatever still runs in the sandbox and remove its cgroups."""
        for directory in (*self.directories.values(), *filter(None, [self.idle_cpu])):
            _kill_and_remove(directory)


@dataclass(frozen=True)
class CgroupTree:
    """This server's own cgroups: a directory per hierarchy holding one per sandbox."""

    roots: dict[str, Path]
    idle_cpu_root: Path | None = None

    @classmethod
    def create(cls) -> CgroupTree | None:
        """The tree for this server, or None where cgroups cannot be used (said why in
        the log). Trees of servers that are gone are removed on the way."""
        if os.geteuid() != 0:
            return None
        mounts, own = _mounts(), _own_paths()
        if any(name not in mounts or name not in own for name in _REQUIRED):
            log.info("cgroups: no writable cgroup v1 memory and pids hierarchies")
            return None
        roots: dict[str, Path] = {}
        try:
            for name in (*_REQUIRED, *_OPTIONAL):
                if name not in mounts or name not in own:
                    continue
                parent = mounts[name] / own[name].lstrip("/")
                _remove_stale(parent)
                root = parent / f"{_PREFIX}{os.getpid()}"
                root.mkdir(exist_ok=True)
                roots[name] = root
            if "memory" in roots:  # limits hold a sandbox's whole subtree
                with contextlib.suppress(OSError):
                    _write(roots["memory"] / "memory.use_hierarchy", "1")
        except OSError as error:
            log.info("cgroups: cannot be used here (%s); rlimits only", error)
            for root in roots.values():
                with contextlib.suppress(OSError):
                    root.rmdir()
            return None
        cpu_alone = "cpu" in roots and all(mounts["cpu"] != mounts[n] for n in _REQUIRED)
        return cls(roots, _idle_root(roots["cpu"]) if cpu_alone else None)

    @property
    def controllers(self) -> list[str]:
        return sorted(self.roots)

    def sandbox(self, name: str) -> SandboxCgroup:
        """The cgroups of sandbox ``name`` (made if new)."""
        directories: dict[str, Path] = {}
        for controller, root in self.roots.items():
            directory = root / name
            directory.mkdir(exist_ok=True)
            directories[controller] = directory
        idle_cpu = None
        if self.idle_cpu_root is not None:
            idle_cpu = self.idle_cpu_root / name
            try:
                idle_cpu.mkdir(exist_ok=True)
            except OSError as error:  # the sandbox is then demoted by its weight alone
                log.warning("cgroups: no idle twin for sandbox %s (%s)", name, error)
                idle_cpu = None
        return SandboxCgroup(directories, idle_cpu)

    def remove(self) -> None:
        """Kill everything in every sandbox of this server and remove the tree."""
        for root in (*self.roots.values(), *filter(None, [self.idle_cpu_root])):
            _kill_and_remove(root)


def _idle_root(cpu_root: Path) -> Path | None:
    """The idle tree beside ``cpu_root`` (None where the kernel has no ``cpu.idle``)."""
    root = cpu_root.parent / f"{_IDLE_PREFIX}{os.getpid()}"
    try:
        root.mkdir(exist_ok=True)
        _write(root / "cpu.idle", "1")  # no such file before Linux 5.15: OSError
    except OSError as error:
        log.info("cgroups: no idle tree for demoted sandboxes (%s)", error)
        with contextlib.suppress(OSError):
            root.rmdir()
        return None
    return root


def _remove_stale(parent: Path) -> None:
    """Remove the trees of servers that no longer run (killed before they cleaned up)."""
    with contextlib.suppress(OSError):
        for directory in parent.iterdir():
            if not directory.name.startswith(_PREFIX) or not directory.is_dir():
                continue
            pid = directory.name.rpartition("-")[2]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                _kill_and_remove(directory)
