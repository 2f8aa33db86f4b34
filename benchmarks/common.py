"""What every benchmark shares: its settings, summary statistics and machine facts."""

from __future__ import annotations

import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "REPO_ROOT",
    "Settings",
    "machine_facts",
    "ms",
    "summarize",
    "timed",
    "wait_until",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    """How many repetitions each benchmark makes; ``quick()`` is the smoke-test size."""

    trivial_runs: int = 50
    trivial_warmup: int = 5
    sdk_wait_runs: int = 50
    poll_durations: tuple[float, ...] = (0.1, 1.0, 5.0, 20.0)
    poll_repeats: dict[float, int] | None = None
    bridge_repeats: int = 5
    cold_repeats: int = 3
    warm_repeats: int = 5
    fresh_notebook_repeats: int = 3
    throughput_seconds: float = 10.0
    load_ext_repeats: int = 10
    quick: bool = False

    @classmethod
    def quick_settings(cls) -> Settings:
        return cls(
            trivial_runs=5,
            trivial_warmup=1,
            sdk_wait_runs=2,
            poll_durations=(0.1, 1.0),
            poll_repeats={0.1: 1, 1.0: 1},
            bridge_repeats=1,
            cold_repeats=1,
            warm_repeats=1,
            fresh_notebook_repeats=1,
            throughput_seconds=1.0,
            load_ext_repeats=2,
            quick=True,
        )

    def poll_repeat(self, duration: float) -> int:
        """Runs per sleep duration: more of the short ones, one of the longest."""
        if self.poll_repeats is not None and duration in self.poll_repeats:
            return self.poll_repeats[duration]
        if duration <= 0.1:
            return 10
        if duration <= 1:
            return 5
        if duration <= 5:
            return 2
        return 1

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.poll_repeats is not None:
            data["poll_repeats"] = {str(k): v for k, v in self.poll_repeats.items()}
        return data


def _percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Iterable[float]) -> dict[str, float | int]:
    """Median, p95, min, max and count of a sample (empty sample: count 0 only)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "median": statistics.median(ordered),
        "p95": _percentile(ordered, 0.95),
        "min": ordered[0],
        "max": ordered[-1],
        "mean": statistics.fmean(ordered),
    }


def take_turns(
    methods: dict[str, Callable[[], float]], rounds: int, *, seed: int = 16
) -> dict[str, list[float]]:
    """Each method once per round, in an order shuffled each round (fixed ``seed``).

    Taking turns spreads a slow patch of the machine over all methods; shuffling keeps
    a method from always following the same neighbour and inheriting its effect on the
    machine (a busy poll just before leaves the CPUs awake for the next one).
    """
    order = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name in order.sample(list(methods), len(methods)):
            times[name].append(methods[name]())
    return times


def ms(seconds: Iterable[float]) -> list[float]:
    """Seconds to milliseconds."""
    return [s * 1000.0 for s in seconds]


@contextmanager
def timed(sink: list[float]) -> Iterator[None]:
    """Append the wall time of the block, in seconds, to ``sink``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        sink.append(time.perf_counter() - start)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` every 50 ms; `TimeoutError` naming ``what`` if it never holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine_facts() -> dict[str, Any]:
    """The machine and software the figures come from."""
    import psutil

    from sandbox_magic import __version__

    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sandbox_magic": __version__,
        "git_commit": _git_commit(),
        "executable_is_venv": sys.prefix != sys.base_prefix,
    }
