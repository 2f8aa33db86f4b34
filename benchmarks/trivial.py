"""Case 1: a trivial cell (``1+1``), each way of running it, side by side.

The methods take turns within each round (`take_turns`), so a slow patch of the
machine hits all of them alike. The SDK's ``wait_for_run`` costs about a second per
run, so it gets its own (possibly smaller) count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.common import Settings, ms, summarize, take_turns
from benchmarks.drivers import (
    MagicDriver,
    SdkDriver,
    create_context,
    create_sandbox,
    floor_run,
    server_seconds,
)
from benchmarks.server import LocalServer

__all__ = ["CODE", "run_trivial"]

CODE = "1+1"


def _local_cell(magic: MagicDriver) -> float:
    elapsed, _ = magic.run(CODE)
    return elapsed


def run_trivial(server: LocalServer, magic: MagicDriver, settings: Settings) -> dict[str, Any]:
    """Wall times in ms of each method, the server-side durations and the overhead."""
    with server.client() as http:
        sandbox_id = create_sandbox(http)
        floor_context = create_context(http, sandbox_id)
        sdk_context = create_context(http, sandbox_id)
        sdk = SdkDriver(server.url, server.token, sandbox_id)
        magic.point_at(server.url, server.token)
        server_floor: list[float] = []

        def floor() -> float:
            elapsed, run = floor_run(http, sandbox_id, floor_context, CODE)
            if (seconds := server_seconds(run)) is not None:
                server_floor.append(seconds)
            return elapsed

        methods: dict[str, Callable[[], float]] = {
            "magic": lambda: magic.run(f"%%sandbox\n{CODE}")[0],
            "magic_quiet": lambda: magic.run(f"%%sandbox --quiet\n{CODE}")[0],
            "floor": floor,
            "sdk_run_code": lambda: sdk.run_code(CODE)[0],
            "local_ipython_cell": lambda: _local_cell(magic),
        }
        for _ in range(settings.trivial_warmup):
            for method in methods.values():
                method()
            sdk.create_and_wait(CODE, sdk_context)
        server_floor.clear()

        times = take_turns(methods, settings.trivial_runs)
        times["sdk_wait_for_run"] = [
            sdk.create_and_wait(CODE, sdk_context)[0] for _ in range(settings.sdk_wait_runs)
        ]

        server_magic = _server_durations(http, magic.sandbox_id(), settings.trivial_runs * 2)
        sdk.close()
        http.delete(f"/v1/sandboxes/{sandbox_id}")

    results: dict[str, Any] = {name: summarize(ms(values)) for name, values in times.items()}
    results["server_duration_floor_runs"] = summarize(ms(server_floor))
    results["server_duration_magic_runs"] = summarize(ms(server_magic))
    results["overhead_magic_minus_floor_ms"] = (
        results["magic"]["median"] - results["floor"]["median"]
    )
    results["overhead_quiet_minus_floor_ms"] = (
        results["magic_quiet"]["median"] - results["floor"]["median"]
    )
    results["speedup_vs_wait_for_run"] = (
        results["sdk_wait_for_run"]["median"] / results["magic"]["median"]
    )
    return results


def _server_durations(http: Any, sandbox_id: str | None, limit: int) -> list[float]:
    """Server-side durations of the most recent ``limit`` runs of a sandbox."""
    if sandbox_id is None:
        return []
    durations: list[float] = []
    cursor: str | None = None
    while len(durations) < limit:
        params: dict[str, Any] = {"limit": min(100, limit - len(durations))}
        if cursor:
            params["cursor"] = cursor
        page = http.get(f"/v1/sandboxes/{sandbox_id}/code/runs", params=params).json()
        for run in page["items"]:
            if (seconds := server_seconds(run)) is not None:
                durations.append(seconds)
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return durations
