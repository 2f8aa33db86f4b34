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

__all__ = ["kill_strays", "strays"]


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


def strays(outer_pid: int) -> list[int]:
    """The processes in the sandbox of the kernel started as ``outer_pid``, but the kernel."""
    table = _table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in table.items():
        children.setdefault(parent, []).append(pid)
    inits = children.get(outer_pid, [])
    if not inits:
        return []
    init = inits[0]
    under_init = children.get(init, [])
    if not under_init:
        return []
    kernel = min(under_init, key=lambda pid: (table[pid][1], pid))
    found: list[int] = []
    pending = [pid for pid in under_init if pid != kernel] + children.get(kernel, [])
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending += children.get(pid, [])
    return found


def kill_strays(outer_pid: int, *, rounds: int = 3) -> int:
    """SIGKILL them (a few rounds, for those forked meanwhile); how many were killed."""
    killed = 0
    for _ in range(rounds):
        found = strays(outer_pid)
        if not found:
            break
        for pid in found:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed
