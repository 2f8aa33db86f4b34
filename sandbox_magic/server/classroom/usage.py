"""CPU and memory of a kernel: from its own cgroup when it has one, else from /proc.

When the isolation layer puts each kernel in a cgroup of its own, the cgroup's
``cpu.stat`` and ``memory.current`` count everything the kernel started. Otherwise
the kernel process's own ``/proc/<pid>/stat`` and ``statm`` are read. CPU is turned
into a percentage of one core between two samples.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = ["ProcessUsage", "UsageSampler", "cpu_seconds", "process_tree"]

_CGROUP_ROOT: Final = Path("/sys/fs/cgroup")
_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE: Final = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True, slots=True)
class ProcessUsage:
    """One reading: CPU (% of a core since the previous reading) and memory (MB)."""

    cpu_percent: float | None
    memory_mb: float | None
    source: str  # "cgroup" or "proc"


def _own_cgroup(pid: int | str) -> str | None:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return None


def _cgroup_reading(path: str) -> tuple[float, float] | None:
    """``(cpu seconds, memory bytes)`` of a cgroup v2 directory."""
    directory = _CGROUP_ROOT / path.lstrip("/")
    try:
        memory = float((directory / "memory.current").read_text())
        for line in (directory / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec "):
                return float(line.split()[1]) / 1e6, memory
    except (OSError, ValueError):
        return None
    return None


def _proc_reading(pid: int) -> tuple[float, float] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / _TICKS
        rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return cpu, float(rss_pages * _PAGE)


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (from ``/proc/<pid>/task/*/children``)."""
    found: list[int] = []
    pending = [pid]
    while pending and len(found) < 1000:
        current = pending.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except (OSError, ValueError):
                continue
    return found


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) used so far by the process and everything below it."""
    readings = [_proc_reading(member) for member in process_tree(pid)]
    if readings[0] is None:
        return None
    return sum(reading[0] for reading in readings if reading is not None)


class UsageSampler:
    """Readings of kernel processes; remembers the last sample of each for CPU rates."""

    def __init__(self) -> None:
        self._server_cgroup = _own_cgroup("self")
        self._last: dict[int, tuple[float, float]] = {}

    def read(self, pid: int) -> ProcessUsage:
        group = _own_cgroup(pid)
        reading = None
        source = "proc"
        if group is not None and group != self._server_cgroup:
            reading = _cgroup_reading(group)
            source = "cgroup"
        if reading is None:
            reading, source = _proc_reading(pid), "proc"
        if reading is None:
            return ProcessUsage(None, None, source)
        cpu_seconds, memory = reading
        moment = time.monotonic()
        previous = self._last.get(pid)
        self._last[pid] = (moment, cpu_seconds)
        percent = None
        if previous is not None and moment > previous[0]:
            percent = max(0.0, 100.0 * (cpu_seconds - previous[1]) / (moment - previous[0]))
        return ProcessUsage(percent, round(memory / (1024 * 1024), 1), source)

    def forget_except(self, pids: set[int]) -> None:
        for pid in [p for p in self._last if p not in pids]:
            del self._last[pid]
