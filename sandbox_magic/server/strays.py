"""Processes a confined kernel's code left running, found through ``/proc``.

A confined kernel's process tree is ``bwrap`` (outside) -> ``bwrap`` (the pid
namespace's init) -> the kernel. Everything else under that init was started by
the code: its children, and daemons re-parented to the init when they detached.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

__all__ = ["helpers", "kernel_pid", "kill_strays", "owned_by", "strays"]


def _table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) for every process."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[19]))
    return table


def _init_and_kernel(
    outer_pid: int, table: dict[int, tuple[int, int]]
) -> tuple[dict[int, list[int]], int | None, int | None]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    inits = children.get(outer_pid, [])
    if not inits:
        return children, None, None
    under_init = children.get(inits[0], [])
    if not under_init:
        return children, inits[0], None
    return children, inits[0], min(under_init, key=lambda pid: (table[pid][1], pid))


def kernel_pid(outer_pid: int) -> int:
    """The host pid of the kernel process itself (inside bwrap's init)."""
    _, _, kernel = _init_and_kernel(outer_pid, _table())
    if kernel is None:
        raise ProcessLookupError(f"no kernel process under {outer_pid}")
    return kernel


def strays(outer_pid: int) -> list[int]:
    """The processes in the sandbox of the kernel started as ``outer_pid``, but the kernel."""
    children, init, kernel = _init_and_kernel(outer_pid, _table())
    if init is None or kernel is None:
        return []
    found: list[int] = []
    pending = [pid for pid in children.get(init, []) if pid != kernel]
    pending += children.get(kernel, [])
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def owned_by(uid: int, *, but: int) -> list[int]:
    """The processes of ``uid`` in the pid namespace of ``but``, but ``but`` itself: a
    kernel's strays when its sandbox has a uid of its own (its other kernels have
    namespaces of their own).

    Much cheaper than `strays` (one ``stat`` per process, no file read).
    """
    namespace = os.readlink(f"/proc/{but}/ns/pid")
    found = []
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit() or int(entry.name) == but:
                continue
            with contextlib.suppress(OSError):
                if (
                    entry.stat(follow_symlinks=False).st_uid == uid
                    and os.readlink(f"/proc/{entry.name}/ns/pid") == namespace
                ):
                    found.append(int(entry.name))
    return found


def helpers(kernel: int, depth: int | None) -> set[int]:
    """The kernel's own helper processes: its descendants ``depth`` levels down (all of
    them when None). A kernel that runs its language in a child process (bash_kernel's
    bash, the Java kernel's jshell and the JVM jshell runs code in) keeps those."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in _table().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    level = [kernel]
    while level and (depth is None or depth > 0):
        level = [child for pid in level for child in children.get(pid, [])]
        found.update(level)
        depth = None if depth is None else depth - 1
    return found


def kill_strays(
    outer_pid: int,
    *,
    uid: int | None = None,
    kernel: int | None = None,
    keep: set[int] | frozenset[int] = frozenset(),
    rounds: int = 3,
) -> int:
    """SIGKILL them (a few rounds, for those forked meanwhile) but ``keep``; how many
    were killed.

    With the sandbox's own ``uid`` and the ``kernel``'s pid, they are found by owner.
    """
    killed = 0
    for _ in range(rounds):
        if uid is not None and kernel is not None:
            found = owned_by(uid, but=kernel)
        else:
            found = strays(outer_pid)
        found = [pid for pid in found if pid not in keep]
        if not found:
            break
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed
