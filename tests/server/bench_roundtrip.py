"""Measure the local server: cold vs warm first result of a new context, trivial-run RTT.

Run: ``python tests/server/bench_roundtrip.py`` (starts its own servers; not a test).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import httpx

READY = "sandbox-magic server ready at "


def start(warm: int) -> tuple[subprocess.Popen[str], str]:
    state = tempfile.mkdtemp(prefix="sm-bench-")
    env = dict(os.environ, SANDBOX_MAGIC_TOKEN="bench-token", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "sandbox_magic.cli", "serve", "--port", "0"]
    command += ["--state-dir", state, "--warm-kernels", str(warm)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(READY):
            return process, line[len(READY) :].strip()
    raise RuntimeError("server did not start")


def run_once(client: httpx.Client, base: str, context: str, *, long_poll: bool = False) -> float:
    started = time.perf_counter()
    run = client.post(f"{base}/code/runs", json={"code": "1", "context_id": context}).json()
    params = {"wait_ms": 10000} if long_poll else {}
    while run["status"] not in ("succeeded", "failed", "cancelled"):
        run = client.get(f"{base}/code/runs/{run['id']}", params=params).json()
    return time.perf_counter() - started


def first_result(client: httpx.Client) -> float:
    base = f"/v1/sandboxes/{client.post('/v1/sandboxes', json={}).json()['id']}"
    started = time.perf_counter()
    context = client.post(f"{base}/code/contexts", json={}).json()["id"]
    run_once(client, base, context)
    return time.perf_counter() - started


def report(label: str, samples: list[float]) -> None:
    print(f"{label}: median {statistics.median(samples) * 1000:.1f} ms (n={len(samples)})")


def main() -> None:
    for warm in (0, 1):
        process, url = start(warm)
        try:
            with httpx.Client(base_url=url, headers={"Authorization": "Bearer bench-token"}) as c:
                samples = []
                for _ in range(5):
                    while warm and c.get("/healthz").json()["warm_kernels_ready"] < warm:
                        time.sleep(0.05)  # let the pool refill between samples
                    time.sleep(0.5)
                    samples.append(first_result(c))
                label = "warm" if warm else "cold"
                report(f"{label} first result of a new context", samples)
                if warm:
                    base = f"/v1/sandboxes/{c.post('/v1/sandboxes', json={}).json()['id']}"
                    context = c.post(f"{base}/code/contexts", json={}).json()["id"]
                    run_once(c, base, context)
                    rtts = [run_once(c, base, context) for _ in range(30)]
                    report("trivial run round trip (POST + tight GET polling)", rtts)
                    waits = [run_once(c, base, context, long_poll=True) for _ in range(30)]
                    report("trivial run round trip (POST + long-poll GET ?wait_ms)", waits)
                    sse = []
                    for _ in range(30):
                        t = time.perf_counter()
                        c.post(f"{base}/code/execute", json={"code": "1", "context_id": context})
                        sse.append(time.perf_counter() - t)
                    report("trivial code/execute (SSE) round trip", sse)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
