"""The cost of isolation: one run measures a ``--isolation bwrap`` and a ``none`` server.

``python -m benchmarks.isolation [--quick] [--json FILE]`` prints, side by side with
the ratio bwrap / none:

- warm new context: create a sandbox and its first context (from a warm kernel: the
  server keeps one ready, and the benchmark waits for it), then the first result of
  ``1+1``;
- cold new context: the same on a server with ``--warm-kernels 0``;
- trivial run: ``1+1`` in an existing context, polled every 2 ms;
- memory per context: with several contexts open on the cold server, the unique
  (USS) and resident (RSS) memory of all the server's child processes, per context
  (under bwrap that includes bwrap's own two processes per kernel).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.common import ms, summarize
from benchmarks.drivers import create_context, create_sandbox, floor_run
from benchmarks.server import LocalServer

__all__ = ["main", "measure"]

_MB = 1024 * 1024
MODES = ("bwrap", "none")


def _warm_ready(http: httpx.Client, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while http.get("/healthz").json().get("warm_kernels_ready", 0) < 1:
        if time.monotonic() > deadline:
            raise TimeoutError("no warm kernel became ready")
        time.sleep(0.02)


def _new_context(http: httpx.Client) -> tuple[float, str, str]:
    """Seconds from creating a sandbox to its first context's first result."""
    start = time.perf_counter()
    sandbox = create_sandbox(http)
    context = create_context(http, sandbox)
    floor_run(http, sandbox, context, "1+1")
    return time.perf_counter() - start, sandbox, context


def _new_contexts(server: LocalServer, repeats: int, *, warm: bool) -> list[float]:
    times = []
    with server.client() as http:
        for _ in range(repeats):
            if warm:
                _warm_ready(http)
            seconds, sandbox, _ = _new_context(http)
            times.append(seconds)
            http.delete(f"/v1/sandboxes/{sandbox}")
    return times


def _trivial_runs(server: LocalServer, repeats: int) -> list[float]:
    with server.client() as http:
        _, sandbox, context = _new_context(http)
        times = [floor_run(http, sandbox, context, "1+1")[0] for _ in range(repeats)]
        http.delete(f"/v1/sandboxes/{sandbox}")
    return times


def _memory_per_context(server: LocalServer, contexts: int) -> dict[str, float]:
    with server.client() as http:
        sandboxes = [_new_context(http)[1] for _ in range(contexts)]
        uss = rss = 0
        for child in psutil.Process(server.process.pid).children(recursive=True):
            try:
                info = child.memory_full_info()
            except psutil.Error:
                continue
            uss += info.uss
            rss += info.rss
        for sandbox in sandboxes:
            http.delete(f"/v1/sandboxes/{sandbox}")
    return {"uss_mb": uss / _MB / contexts, "rss_mb": rss / _MB / contexts}


def measure(quick: bool, workdir: Path) -> dict[str, Any]:
    """Every figure for both modes."""
    repeats, runs, contexts = (2, 10, 2) if quick else (8, 100, 4)
    results: dict[str, Any] = {}
    for mode in MODES:
        warm = LocalServer.start(workdir / f"{mode}-warm", warm_kernels=1, isolation=mode)
        try:
            warm_times = _new_contexts(warm, repeats, warm=True)
            trivial = _trivial_runs(warm, runs)
        finally:
            warm.stop()
        cold = LocalServer.start(workdir / f"{mode}-cold", warm_kernels=0, isolation=mode)
        try:
            cold_times = _new_contexts(cold, repeats, warm=False)
            memory = _memory_per_context(cold, contexts)
        finally:
            cold.stop()
        results[mode] = {
            "warm_new_context_ms": summarize(ms(warm_times)),
            "cold_new_context_ms": summarize(ms(cold_times)),
            "trivial_run_ms": summarize(ms(trivial)),
            "memory_per_context": memory,
        }
    return results


def _table(results: dict[str, Any]) -> str:
    rows = [
        ("warm new context, median ms", "warm_new_context_ms", "median"),
        ("cold new context, median ms", "cold_new_context_ms", "median"),
        ("trivial run, median ms", "trivial_run_ms", "median"),
        ("trivial run, p95 ms", "trivial_run_ms", "p95"),
        ("memory per context, USS MB", "memory_per_context", "uss_mb"),
        ("memory per context, RSS MB", "memory_per_context", "rss_mb"),
    ]
    lines = [f"{'':32} {'bwrap':>10} {'none':>10} {'bwrap/none':>11}"]
    for label, key, field in rows:
        confined, plain = results["bwrap"][key][field], results["none"][key][field]
        ratio = confined / plain if plain else float("nan")
        lines.append(f"{label:32} {confined:10.1f} {plain:10.1f} {ratio:11.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.isolation")
    parser.add_argument("--quick", action="store_true", help="a tiny configuration")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sbm-bench-iso-") as workdir:
        results = measure(args.quick, Path(workdir))
    print(_table(results))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
