"""Case 4: the local server itself.

- first result of a new context, from a pre-warmed kernel and from a cold start
  (a server with ``--warm-kernels 0``): create the context, run ``1+1``, poll every
  2 ms;
- the first cell of a fresh notebook: a new Python process with IPython, then
  ``%load_ext sandbox_magic`` and one ``%%sandbox`` cell with nothing configured, so
  the embedded server is started (its Jupyter data directory is a temporary one);
- sustained throughput of trivial runs with 1 and 4 contexts busy at once, each
  driven by the package's own client and poller;
- memory: resident and unique memory of each context's kernel process.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.common import Settings, ms, summarize
from benchmarks.drivers import create_context, create_sandbox, floor_run
from benchmarks.server import LocalServer

__all__ = ["run_local_server"]

_MB = 1024 * 1024


def _first_result(server: LocalServer, sandbox_id: str) -> tuple[float, float, str]:
    """Seconds to create a context and to get its first result; the context id."""
    with server.client() as http:
        start = time.perf_counter()
        context_id = create_context(http, sandbox_id)
        created = time.perf_counter()
        floor_run(http, sandbox_id, context_id, "1+1")
        done = time.perf_counter()
    return done - start, created - start, context_id


def _delete_context(server: LocalServer, sandbox_id: str, context_id: str) -> None:
    with server.client() as http:
        http.delete(f"/v1/sandboxes/{sandbox_id}/code/contexts/{context_id}")


def _new_context_latency(server: LocalServer, repeats: int, *, warm: bool) -> dict[str, Any]:
    with server.client() as http:
        sandbox_id = create_sandbox(http)
    totals: list[float] = []
    creates: list[float] = []
    for _ in range(repeats):
        if warm:
            server.wait_for_idle_kernels(1)
        total, create, context_id = _first_result(server, sandbox_id)
        totals.append(total)
        creates.append(create)
        _delete_context(server, sandbox_id, context_id)
    return {
        "first_result_ms": summarize(ms(totals)),
        "create_context_ms": summarize(ms(creates)),
    }


#: Seconds between the ``%load_ext`` cell and the first ``%%sandbox`` cell in the
#: "after a pause" variant: a person reading the next cell.
FRESH_NOTEBOOK_PAUSE = 3.0

_FRESH_NOTEBOOK = textwrap.dedent(
    """
    import json, os, time
    pause = float(os.environ.get("SBM_PAUSE_AFTER_LOAD", "0"))
    started = time.perf_counter()
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output
    shell = InteractiveShell.instance()
    ready = time.perf_counter()
    shell.run_cell("%load_ext sandbox_magic")  # as a notebook cell: its end starts the server
    loaded = time.perf_counter()
    if pause:
        time.sleep(pause)  # a person reading before the next cell
        loaded = time.perf_counter()
    with capture_output() as captured:
        result = shell.run_cell("%%sandbox\\n1+1")
    done = time.perf_counter()
    ok = result.success and result.result is not None
    shell.run_line_magic("unload_ext", "sandbox_magic")
    print(json.dumps({
        "ok": bool(ok),
        "error": None if ok else repr(result.error_in_exec),
        "ipython_start": ready - started,
        "load_ext": loaded - ready,
        "first_cell": done - loaded,
        "load_ext_and_first_cell": done - ready,
    }))
    """
)


def _fresh_notebook_once(pause: float = 0.0) -> dict[str, Any]:
    """One fresh process: IPython, %load_ext, the first %%sandbox cell (embedded server).

    ``pause`` seconds pass between the two cells, as when a person reads in between;
    the embedded server starts during them.
    """
    with tempfile.TemporaryDirectory(prefix="sbm-bench-nb-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NULLSPACE_")}
        env.update(
            JUPYTER_DATA_DIR=str(Path(home) / "jupyter-data"),
            IPYTHONDIR=str(Path(home) / "ipython"),
            SANDBOX_MAGIC_HEADLESS="1",
            SBM_PAUSE_AFTER_LOAD=str(pause),
        )
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-c", _FRESH_NOTEBOOK],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            check=False,
        )
        process_seconds = time.perf_counter() - start
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"the fresh-notebook process failed:\n{completed.stderr[-2000:]}")
    facts: dict[str, Any] = json.loads(lines[-1])
    if not facts["ok"]:
        raise RuntimeError(f"the first cell of a fresh notebook failed: {facts['error']}")
    facts["process"] = process_seconds
    return facts


def _fresh_notebook(repeats: int, pause: float = 0.0) -> dict[str, Any]:
    samples = [_fresh_notebook_once(pause) for _ in range(repeats)]
    keys = ("load_ext_and_first_cell", "first_cell", "load_ext", "ipython_start", "process")
    return {f"{key}_ms": summarize(ms(sample[key] for sample in samples)) for key in keys}


async def _throughput(url: str, token: str, contexts: int, seconds: float) -> dict[str, Any]:
    """Trivial runs per second with ``contexts`` contexts kept busy by the magic's poller."""
    from sandbox_magic.client import AsyncSandboxClient, PollPolicy, poll_run

    policy = PollPolicy()
    async with AsyncSandboxClient(url, token) as client:
        sandbox = await client.create_sandbox()
        context_ids = [(await client.create_context(sandbox.id)).id for _ in range(contexts)]
        for context_id in context_ids:  # warm up each context once
            run = await client.create_run(sandbox.id, code="1+1", context_id=context_id)
            await poll_run(client, sandbox.id, run.id, policy=policy, deadline=None, initial=run)
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def worker(context_id: str) -> int:
            done = 0
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                run = await client.create_run(sandbox.id, code="1+1", context_id=context_id)
                final = await poll_run(
                    client, sandbox.id, run.id, policy=policy, deadline=None, initial=run
                )
                if final.status != "succeeded":
                    raise RuntimeError(f"a throughput run ended {final.status}")
                latencies.append(time.perf_counter() - start)
                done += 1
            return done

        start = time.perf_counter()
        counts = await asyncio.gather(*(worker(c) for c in context_ids))
        elapsed = time.perf_counter() - start
        await client.delete_sandbox(sandbox.id)
    return {
        "contexts": contexts,
        "runs": sum(counts),
        "seconds": elapsed,
        "runs_per_second": sum(counts) / elapsed,
        "run_latency_ms": summarize(ms(latencies)),
    }


def _memory(server: LocalServer, contexts: int) -> dict[str, Any]:
    """Memory of the kernel behind each of ``contexts`` new contexts, after a small cell.

    Each context reports its own kernel's process id, so exactly those are measured.
    USS (memory unique to the process) is what one more context really costs; RSS
    also counts libraries shared with other processes.
    """
    rss: list[float] = []
    uss: list[float] = []
    with server.client() as http:
        sandbox_id = create_sandbox(http)
        for _ in range(contexts):
            context_id = create_context(http, sandbox_id)
            _, run = floor_run(http, sandbox_id, context_id, "import os\nos.getpid()")
            main = next(r for r in run["execution"]["results"] if r.get("is_main_result"))
            info = psutil.Process(int(main["text"])).memory_full_info()
            rss.append(info.rss / _MB)
            uss.append(info.uss / _MB)
        server_rss = psutil.Process(server.process.pid).memory_info().rss / _MB
        http.delete(f"/v1/sandboxes/{sandbox_id}")
    return {
        "contexts": contexts,
        "kernel_rss_mb": summarize(rss),
        "kernel_uss_mb": summarize(uss),
        "server_rss_mb": server_rss,
    }


def run_local_server(server: LocalServer, workdir: Path, settings: Settings) -> dict[str, Any]:
    """Every measurement of case 4; ``server`` is the benchmark's own (warm kernels)."""
    results: dict[str, Any] = {}
    results["warm_new_context"] = _new_context_latency(server, settings.warm_repeats, warm=True)
    cold_server = LocalServer.start(workdir / "cold-state", warm_kernels=0)
    try:
        results["cold_new_context"] = _new_context_latency(
            cold_server, settings.cold_repeats, warm=False
        )
    finally:
        cold_server.stop()
    results["fresh_notebook"] = _fresh_notebook(settings.fresh_notebook_repeats)
    results["fresh_notebook_after_pause"] = _fresh_notebook(
        settings.fresh_notebook_repeats, pause=FRESH_NOTEBOOK_PAUSE
    )
    results["throughput"] = {
        f"{n}_contexts": asyncio.run(
            _throughput(server.url, server.token, n, settings.throughput_seconds)
        )
        for n in (1, 4)
    }
    results["memory"] = _memory(server, 4)
    return results
