"""CPU and memory of a sandbox or a kernel: from cgroups where there are, else /proc.

Where the isolation layer keeps each sandbox in cgroup v1 hierarchies of its own
(`sandbox_magic.server.cgroups`), the sandbox's ``cpuacct.usage`` and
``memory.usage_in_bytes`` count everything it started (`UsageSampler.read_sandbox`).
Where a kernel has a cgroup v2 directory of its own, its ``cpu.stat`` and
``memory.current`` do. Otherwise ``/proc/<pid>/stat`` and ``statm`` of the kernel
process and everything below it are read (resident memory, so pages shared between
them count for each). CPU is turned into a percentage of one core between two samples.
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


def _tree_reading(pid: int) -> tuple[float, float] | None:
    """`_proc_reading` summed over the process and everything below it: a confined
    kernel's pid is its bwrap wrapper, the Python and what the code started are below."""
    readings = [_proc_reading(member) for member in process_tree(pid)]
    if readings[0] is None:
        return None
    found = [reading for reading in readings if reading is not None]
    return sum(cpu for cpu, _ in found), sum(memory for _, memory in found)


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
    reading = _tree_reading(pid)
    return None if reading is None else reading[0]


class UsageSampler:
    """Readings of kernel processes; remembers the last sample of each for CPU rates."""

    def __init__(self) -> None:
        self._server_cgroup = _own_cgroup("self")
        self._last: dict[int | str, tuple[float, float]] = {}

    def read_sandbox(
        self, sandbox_id: str, reading: tuple[float | None, float | None]
    ) -> ProcessUsage:
        """A sandbox's usage from its cgroups' ``(CPU seconds, memory bytes)``."""
        cpu_seconds, memory = reading
        percent = None if cpu_seconds is None else self._rate(sandbox_id, cpu_seconds)
        return ProcessUsage(
            percent, None if memory is None else round(memory / (1024 * 1024), 1), "cgroup"
        )

    def _rate(self, key: int | str, cpu_seconds: float) -> float | None:
        """% of a core used since the previous reading of ``key`` (None the first time)."""
        moment = time.monotonic()
        previous = self._last.get(key)
        self._last[key] = (moment, cpu_seconds)
        if previous is None or moment <= previous[0]:
            return None
        return max(0.0, 100.0 * (cpu_seconds - previous[1]) / (moment - previous[0]))

    def read(self, pid: int) -> ProcessUsage:
        group = _own_cgroup(pid)
        reading = None
        source = "proc"
        if group is not None and group != self._server_cgroup:
            reading = _cgroup_reading(group)
            source = "cgroup"
        if reading is None:
            reading, source = _tree_reading(pid), "proc"
        if reading is None:
            return ProcessUsage(None, None, source)
        cpu_seconds, memory = reading
        percent = self._rate(pid, cpu_seconds)
        return ProcessUsage(percent, round(memory / (1024 * 1024), 1), source)

    def forget_except(self, keys: set[int | str]) -> None:
        """Drop the last readings of kernels and sandboxes no longer shown."""
        for key in [k for k in self._last if k not in keys]:
            del self._last[key]
