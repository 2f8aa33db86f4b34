"""Case 2: poll load and end-to-end latency of runs that sleep 0.1 to 20 s.

Both clients talk to the server through a `CountingProxy`, so requests are counted
where they arrive. The comparison is the SDK's ``create_run`` + ``wait_for_run``: one
read right after creating the run, then one every second (a fixed 1 s poll).

Latency is the wall clock when the caller has the final result (``run_cell`` returned,
outputs rendered) minus the server's ``completed_at``; both clocks are this machine's,
and the server stamps times to the millisecond.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any

from benchmarks.common import Settings, ms, summarize
from benchmarks.drivers import MagicDriver, SdkDriver, create_context, create_sandbox, parse_time
from benchmarks.server import CountingProxy, LocalServer

__all__ = ["run_polling"]

_RUN_PATH = re.compile(r"^/v1/sandboxes/[^/]+/code/runs/[^/]+$")


def _requests(before: Counter[tuple[str, str]], after: Counter[tuple[str, str]]) -> tuple[int, int]:
    """(GETs of a run record, all requests) between two snapshots of the counts."""
    polls = total = 0
    for (method, path), count in (after - before).items():
        total += count
        if method == "GET" and _RUN_PATH.match(path):
            polls += count
    return polls, total


def _sleep_code(seconds: float) -> str:
    return f"import time\ntime.sleep({seconds!r})"


def run_polling(server: LocalServer, magic: MagicDriver, settings: Settings) -> dict[str, Any]:
    """Per sleep duration: requests per run and latency, for the magic and a 1 s poll."""
    proxy = CountingProxy(server.url).start()
    try:
        magic.point_at(proxy.url, server.token)
        magic.run("%%sandbox --quiet\n1+1")  # session, sandbox and context exist from here
        with server.client(proxy.url) as http:
            sandbox_id = create_sandbox(http)
            context_id = create_context(http, sandbox_id)
        sdk = SdkDriver(proxy.url, server.token, sandbox_id)
        sdk.create_and_wait("1+1", context_id)

        results: dict[str, Any] = {}
        for duration in settings.poll_durations:
            code = _sleep_code(duration)
            rows: dict[str, dict[str, list[float]]] = {
                "magic": {"polls": [], "requests": [], "latency": [], "wall": []},
                "fixed_1s_poll": {"polls": [], "requests": [], "latency": [], "wall": []},
            }
            for _ in range(settings.poll_repeat(duration)):
                before = proxy.counts()
                wall, _ = magic.run(f"%%sandbox --quiet --out _bench_run\n{code}")
                done = time.time()
                run = magic.shell.user_ns.pop("_bench_run")
                _record(rows["magic"], proxy, before, wall, done, run.completed_at)

                before = proxy.counts()
                wall, final = sdk.create_and_wait(code, context_id)
                done = time.time()
                _record(rows["fixed_1s_poll"], proxy, before, wall, done, final.completed_at)
            results[f"{duration:g}s"] = {
                method: {
                    "polls": summarize(row["polls"]),
                    "requests": summarize(row["requests"]),
                    "latency_ms": summarize(ms(row["latency"])),
                    "wall_ms": summarize(ms(row["wall"])),
                }
                for method, row in rows.items()
            }
        sdk.close()
    finally:
        proxy.stop()
    for entry in results.values():
        magic_requests = entry["magic"]["requests"]["median"]
        fixed_requests = entry["fixed_1s_poll"]["requests"]["median"]
        entry["request_ratio"] = magic_requests / fixed_requests
    return results


def _record(
    row: dict[str, list[float]],
    proxy: CountingProxy,
    before: Counter[tuple[str, str]],
    wall: float,
    done: float,
    completed_at: str | None,
) -> None:
    polls, total = _requests(before, proxy.counts())
    row["polls"].append(polls)
    row["requests"].append(total)
    row["wall"].append(wall)
    completed = parse_time(completed_at)
    if completed is not None:
        row["latency"].append(done - completed)
