"""Soak the local server: many runs across contexts, then count what was left behind.

    python benchmarks/soak.py --runs 1000 --contexts 8

starts ``sandbox-magic serve`` on a free loopback port with a private state dir (or
uses ``--url``/``--token``/``--pid`` of a running one), and drives ``--runs`` runs
spread over ``--contexts`` contexts of one sandbox, all contexts at once. The runs mix
plain successes, code that raises, runs that hit their timeout, runs cancelled while
running, and (every 50th) code that ignores the interrupt so the server must restart
the kernel. Every run's final status is checked against what its kind must give.

Around the soak, the server process is measured after a warm-up round and again
after the soak's sandbox was deleted: its child processes (kernels), open file
descriptors and resident memory. The figures are printed as JSON. The reliability
tests run the same soak at a small size (``tests/reliability/test_soak.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

__all__ = ["Measure", "run_soak", "soak_server"]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

#: kind -> (code, run timeout, what the run must end as)
KINDS: dict[str, tuple[str, int | None, str]] = {
    "ok": ("print('ok', flush=True)\nn = globals().get('n', 0) + 1\nn", None, "succeeded"),
    "error": ("1 / 0", None, "failed"),
    "output": ("print('x' * 2000)\nfor i in range(50): print(i)", None, "succeeded"),
    "display": (
        "from IPython.display import HTML, display\ndisplay(HTML('<b>hi</b>'))\n'shown'",
        None,
        "succeeded",
    ),
    "timeout": ("import time\ntime.sleep(30)", 1, "failed"),
    "cancel": ("import time\nprint('started', flush=True)\ntime.sleep(30)", None, "cancelled"),
    "stubborn": (
        "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end:\n"
        "    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass",
        1,
        "failed",
    ),
}
#: The order kinds come in; "stubborn" replaces every 50th run.
CYCLE = ("ok", "error", "output", "ok", "timeout", "display", "cancel", "ok", "error", "output")


def kind_of(index: int) -> str:
    if index % 50 == 49:
        return "stubborn"
    return CYCLE[index % len(CYCLE)]


@dataclass(frozen=True)
class Measure:
    """One look at the server process."""

    kernels: int
    fds: int
    rss_mb: float

    @classmethod
    def of(cls, pid: int) -> Measure:
        process = psutil.Process(pid)
        children = [p for p in process.children(recursive=True) if _alive(p)]
        return cls(len(children), process.num_fds(), process.memory_info().rss / 2**20)


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


async def _wait(api: httpx.AsyncClient, base: str, run_id: str, limit: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    delay = 0.01
    while True:
        run: dict[str, Any] = (await api.get(f"{base}/code/runs/{run_id}")).json()
        if run["status"] in TERMINAL:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} did not end within {limit} s: {run['status']}")
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, 0.2)


async def _worker(
    api: httpx.AsyncClient, base: str, context: str, indexes: list[int], report: Counter[str]
) -> None:
    for index in indexes:
        kind = kind_of(index)
        code, timeout, expected = KINDS[kind]
        body: dict[str, Any] = {"code": code, "context_id": context}
        if timeout is not None:
            body["timeout"] = timeout
        response = await api.post(f"{base}/code/runs", json=body)
        if response.status_code != 202:
            raise AssertionError(f"submit failed: {response.status_code} {response.text}")
        run_id = response.json()["id"]
        if kind == "cancel":
            deadline = time.monotonic() + 60
            while True:  # cancel once it runs and has printed
                run = (await api.get(f"{base}/code/runs/{run_id}")).json()
                if run["execution"]["logs"]["stdout"] or run["status"] in TERMINAL:
                    break
                if time.monotonic() > deadline:
                    raise AssertionError(f"run {run_id} never started")
                await asyncio.sleep(0.01)
            await api.post(f"{base}/code/runs/{run_id}/cancel")
        final = await _wait(api, base, run_id, 90)
        if final["status"] != expected:
            raise AssertionError(f"{kind} run {run_id} ended {final['status']}, not {expected}")
        report[f"{kind}:{final['status']}"] += 1


async def _round(url: str, token: str, runs: int, contexts: int) -> Counter[str]:
    """One sandbox, ``contexts`` contexts, ``runs`` runs; the sandbox deleted after."""
    report: Counter[str] = Counter()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=2 * contexts + 4)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as api:
        sandbox = (await api.post("/v1/sandboxes", json={})).json()["id"]
        base = f"/v1/sandboxes/{sandbox}"
        try:
            ids = []
            for _ in range(contexts):
                response = await api.post(f"{base}/code/contexts", json={})
                ids.append(response.json()["id"])
            shares: list[list[int]] = [list(range(i, runs, contexts)) for i in range(contexts)]
            await asyncio.gather(
                *(
                    _worker(api, base, ctx, share, report)
                    for ctx, share in zip(ids, shares, strict=True)
                )
            )
            page = (await api.get(f"{base}/code/runs", params={"limit": 1000})).json()
            counted = len(page["items"])
            while page["next_cursor"]:
                params = {"limit": 1000, "cursor": page["next_cursor"]}
                page = (await api.get(f"{base}/code/runs", params=params)).json()
                counted += len(page["items"])
            if counted != runs:
                raise AssertionError(f"the server holds {counted} runs, not {runs}")
        finally:
            await api.delete(base)
    return report


def _settle(pid: int, kernels: int, timeout: float = 60.0) -> Measure:
    """Measure once the server is back to ``kernels`` children and its open files hold
    still for half a second (a kernel being started or shut down is settled first);
    at the deadline, measure anyway."""
    deadline = time.monotonic() + timeout
    previous: Measure | None = None
    while True:
        measure = Measure.of(pid)
        settled = previous is not None and measure.fds == previous.fds
        if (measure.kernels <= kernels and settled) or time.monotonic() > deadline:
            return measure
        previous = measure if measure.kernels <= kernels else None
        time.sleep(0.5)


def run_soak(
    url: str, token: str, pid: int, *, runs: int, contexts: int, warm_kernels: int
) -> dict[str, Any]:
    """Warm up, measure, soak, measure; returns the figures (raises if a run misbehaves)."""
    asyncio.run(_round(url, token, 2 * contexts, contexts))
    before = _settle(pid, warm_kernels)
    started = time.monotonic()
    peak = Measure.of(pid)
    report = asyncio.run(_round(url, token, runs, contexts))
    seconds = time.monotonic() - started
    after = _settle(pid, warm_kernels)
    peak = Measure(max(peak.kernels, after.kernels), peak.fds, peak.rss_mb)
    return {
        "runs": runs,
        "contexts": contexts,
        "seconds": round(seconds, 1),
        "runs_by_kind_and_status": dict(sorted(report.items())),
        "kernels_before": before.kernels,
        "kernels_after": after.kernels,
        "fds_before": before.fds,
        "fds_after": after.fds,
        "rss_mb_before": round(before.rss_mb, 1),
        "rss_mb_after": round(after.rss_mb, 1),
        "rss_mb_growth": round(after.rss_mb - before.rss_mb, 1),
    }


@contextlib.contextmanager
def soak_server(state_dir: Path, warm_kernels: int = 1) -> Iterator[tuple[str, str, int]]:
    """A ``sandbox-magic serve`` subprocess: ``(url, token, pid)``; stopped after."""
    token = secrets.token_urlsafe(16)
    env = dict(os.environ, SANDBOX_MAGIC_TOKEN=token, PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "sandbox_magic.cli", "serve", "--port", "0"]
    command += ["--state-dir", str(state_dir), "--warm-kernels", str(warm_kernels)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if match := re.match(r"sandbox-magic server ready at (\S+)", line):
                break
        else:
            raise RuntimeError("the server did not start")
        yield match.group(1), token, process.pid
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--contexts", type=int, default=8)
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--token", help="its token (with --url)")
    parser.add_argument("--pid", type=int, help="its process id (with --url)")
    parser.add_argument("--warm-kernels", type=int, default=1)
    args = parser.parse_args(argv)
    if args.url:
        if not (args.token and args.pid):
            parser.error("--url needs --token and --pid")
        figures = run_soak(
            args.url,
            args.token,
            args.pid,
            runs=args.runs,
            contexts=args.contexts,
            warm_kernels=args.warm_kernels,
        )
    else:
        with (
            tempfile.TemporaryDirectory(prefix="sandbox-magic-soak-") as state,
            soak_server(Path(state), args.warm_kernels) as (url, token, pid),
        ):
            figures = run_soak(
                url, token, pid, runs=args.runs, contexts=args.contexts,
                warm_kernels=args.warm_kernels,
            )  # fmt: skip
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
