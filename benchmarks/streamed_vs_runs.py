"""A trivial cell through async runs (submit, then poll) against the streamed fallback.

Usage (from the repository root, with the project's Python)::

    python -m benchmarks.streamed_vs_runs [--rounds 30] [--warmup 3] [--json FILE]

Two local servers are started: an ordinary one, and one with ``--disable-async-runs``
(which makes the magic fall back to streaming through ``/code/execute``). Measured, the
methods taking turns within each round so a slow patch of the machine hits all alike:

- ``client run+poll``: ``create_run`` then the magic's poller, on the ordinary server;
- ``client streamed``: ``/code/execute`` read to its end, on the same server;
- ``magic runs``: ``%%sandbox --quiet`` + ``1+1`` in an IPython shell, ordinary server;
- ``magic streamed``: the same cell against the server without async runs.

Printed: median and p95 wall time per method, HTTP requests per cell, and the ratios
streamed / runs, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import ms, summarize
from benchmarks.drivers import MagicDriver
from benchmarks.server import LocalServer
from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._poller import PollPolicy, poll_run, run_deadline
from sandbox_magic.client._streamed import StreamFold
from sandbox_magic.session.streaming import stream_to_end

CODE = "1+1"


class _Counting(httpx.AsyncBaseTransport):
    """Counts the requests that go through it."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.count = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.count += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _client_methods(
    server: LocalServer, rounds: int, warmup: int
) -> tuple[dict[str, list[float]], dict[str, float]]:
    transport = _Counting()
    async with AsyncSandboxClient(server.url, server.token, transport=transport) as client:
        sandbox = await client.create_sandbox()
        run_ctx = await client.create_context(sandbox.id)
        stream_ctx = await client.create_context(sandbox.id)

        async def run_and_poll() -> None:
            run = await client.create_run(sandbox.id, code=CODE, context_id=run_ctx.id)
            final = await poll_run(
                client,
                sandbox.id,
                run.id,
                policy=PollPolicy(),
                deadline=run_deadline(run),
                initial=run,
            )
            assert final.status == "succeeded", final

        async def streamed() -> None:
            fold = StreamFold(sandbox_id=sandbox.id, context_id=stream_ctx.id, timeout_secs=60)
            final = await stream_to_end(client, fold, code=CODE)
            assert final.status == "succeeded", final

        methods: dict[str, Callable[[], Awaitable[None]]] = {
            "client run+poll": run_and_poll,
            "client streamed": streamed,
        }
        times: dict[str, list[float]] = {name: [] for name in methods}
        requests: dict[str, list[int]] = {name: [] for name in methods}
        for round_ in range(warmup + rounds):
            for name, method in methods.items():
                before = transport.count
                start = time.perf_counter()
                await method()
                elapsed = time.perf_counter() - start
                if round_ >= warmup:
                    times[name].append(elapsed)
                    requests[name].append(transport.count - before)
        await client.delete_sandbox(sandbox.id)
    per_cell = {name: sum(counts) / len(counts) for name, counts in requests.items()}
    return times, per_cell


def _magic_methods(
    ordinary: LocalServer, streaming: LocalServer, rounds: int, warmup: int, home: Path
) -> dict[str, list[float]]:
    magic = MagicDriver(home)
    magic.magics.keep_sandbox = False
    servers = {"magic runs": ordinary, "magic streamed": streaming}
    times: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for round_ in range(warmup + rounds):
            for name, server in servers.items():
                # Switching servers starts a new session; the facts about each server
                # (its generation, whether it has async runs) are kept by the controller.
                magic.point_at(server.url, server.token)
                magic.run("%%sandbox --quiet\n0")  # connect, sandbox and context: not timed
                elapsed, _ = magic.run(f"%%sandbox --quiet\n{CODE}")
                if round_ >= warmup:
                    times[name].append(elapsed)
    finally:
        magic.close()
    return times


def _line(name: str, summary: dict[str, Any], requests: float | None) -> str:
    extra = f"  {requests:4.1f} requests/cell" if requests is not None else ""
    return (
        f"  {name:<18} median {summary['median']:8.2f} ms   p95 {summary['p95']:8.2f} ms"
        f"   (n={summary['n']}){extra}"
    )


def measure(rounds: int, warmup: int) -> dict[str, Any]:
    """Start both servers, measure every method, stop the servers; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="bench-streamed-") as tmp:
        root = Path(tmp)
        ordinary = LocalServer.start(root / "runs", warm_kernels=2)
        streaming = LocalServer.start(
            root / "streamed", warm_kernels=2, extra_args=["--disable-async-runs"]
        )
        try:
            client_times, requests = asyncio.run(_client_methods(ordinary, rounds, warmup))
            magic_times = _magic_methods(ordinary, streaming, rounds, warmup, root)
        finally:
            streaming.stop()
            ordinary.stop()
    samples = {**client_times, **magic_times}
    summaries = {name: summarize(ms(values)) for name, values in samples.items()}
    return {
        "code": CODE,
        "rounds": rounds,
        "methods": summaries,
        "requests_per_cell": requests,
        "ratio_client_streamed_over_run_poll": summaries["client streamed"]["median"]
        / summaries["client run+poll"]["median"],
        "ratio_magic_streamed_over_runs": summaries["magic streamed"]["median"]
        / summaries["magic runs"]["median"],
    }


def report(results: dict[str, Any]) -> str:
    methods, requests = results["methods"], results["requests_per_cell"]
    lines = [f"Trivial cell ({results['code']!r}), {results['rounds']} rounds:"]
    for name, summary in methods.items():
        lines.append(_line(name, summary, requests.get(name)))
    lines.append(
        "  ratio streamed / run+poll (client): "
        f"{results['ratio_client_streamed_over_run_poll']:.2f}"
    )
    lines.append(
        f"  ratio streamed / runs (magic cell): {results['ratio_magic_streamed_over_runs']:.2f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    results = measure(max(1, args.rounds), max(0, args.warmup))
    print(report(results), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
