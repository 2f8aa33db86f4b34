"""Case 3: the cost of showing a big run in the notebook (no server involved).

Runs are built as the server would send them (``Run.from_json``), then rendered the way
``%%sandbox`` renders a finished run: `OutputCursor` picks the outputs in order and an
`OutputSink` writes streams and publishes display outputs, inside the process's real
IPython shell with the outputs captured. Time is measured without tracing; peak memory
in a second pass under ``tracemalloc`` (peak Python allocations during the render).
"""

from __future__ import annotations

import base64
import os
import struct
import time
import tracemalloc
import zlib
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.common import Settings, ms, summarize

__all__ = ["CASES", "run_bridge"]

_MB = 1024 * 1024


def _png(size: int) -> bytes:
    """A valid PNG of about ``size`` bytes: random grey pixels, stored uncompressed."""
    width = 1024
    height = max(1, size // (width + 1))
    rows = bytearray(os.urandom((width + 1) * height))
    rows[:: width + 1] = bytes(height)  # each row starts with filter type 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(rows), 0))
        + chunk(b"IEND", b"")
    )


def _run_json(
    *,
    stdout: Sequence[str] = (),
    results: Sequence[dict[str, Any]] = (),
    order: list[tuple[str, int]] | None = None,
) -> dict[str, Any]:
    if order is None:
        order = [("stdout", i) for i in range(len(stdout))]
        order += [("result", i) for i in range(len(results))]
    return {
        "id": "run_bench",
        "status": "succeeded",
        "sandbox_id": "sb_bench",
        "context_id": "ctx_bench",
        "created_at": "2025-01-01T00:00:00.000Z",
        "completed_at": "2025-01-01T00:00:01.000Z",
        "execution": {
            "results": list(results),
            "logs": {"stdout": list(stdout), "stderr": []},
            "execution_count": 1,
            "output_order": [{"type": kind, "index": index} for kind, index in order],
        },
    }


def _png_results(total: int, count: int = 10) -> list[dict[str, Any]]:
    results = []
    for _ in range(count):
        encoded = base64.b64encode(_png(total // count)).decode("ascii")
        results.append(
            {
                "png": encoded,
                "text": "<Figure size 640x480 with 1 Axes>",
                "data": {"image/png": encoded, "text/plain": "<Figure size 640x480 with 1 Axes>"},
            }
        )
    return results


def _stdout_lines(lines: int, per_chunk: int) -> list[str]:
    return [
        "".join(f"line {n:>6}: some output\n" for n in range(start, min(start + per_chunk, lines)))
        for start in range(0, lines, per_chunk)
    ]


def _small_results(count: int) -> list[dict[str, Any]]:
    return [
        {
            "text": f"<Row {n}>",
            "html": f"<b>row</b> {n}",
            "data": {"text/plain": f"<Row {n}>", "text/html": f"<b>row</b> {n}"},
        }
        for n in range(count)
    ]


def _combined() -> dict[str, Any]:
    """10 MB of PNG, 100k stdout lines and 500 small results, interleaved."""
    stdout = _stdout_lines(100_000, 1000)
    results = _png_results(10 * _MB) + _small_results(500)
    order: list[tuple[str, int]] = []
    chunks = iter(range(len(stdout)))
    for index in range(len(results)):
        if index % 5 == 0:
            order.extend(("stdout", i) for i in [next(chunks, None)] if i is not None)
        order.append(("result", index))
    order.extend(("stdout", i) for i in chunks)
    return _run_json(stdout=stdout, results=results, order=order)


#: name -> (what it is, a builder of the run's JSON, max_output_bytes or None for default)
CASES: dict[str, tuple[str, Callable[[], dict[str, Any]], int | None]] = {
    "png_10mb": (
        "10 PNG results, 1 MB each",
        lambda: _run_json(results=_png_results(10 * _MB)),
        None,
    ),
    "stdout_100k_lines": (
        "100k stdout lines in 100 chunks (as a kernel batches them)",
        lambda: _run_json(stdout=_stdout_lines(100_000, 1000)),
        None,
    ),
    "stdout_100k_chunks": (
        "100k stdout lines, one chunk each (worst case)",
        lambda: _run_json(stdout=_stdout_lines(100_000, 1)),
        None,
    ),
    "small_results_500": (
        "500 small HTML results",
        lambda: _run_json(results=_small_results(500)),
        None,
    ),
    "combined": ("all three above in one run (the target case)", _combined, None),
    "stdout_50mb_truncated": (
        "50 MB of stdout (100-character lines, 1 MB chunks), cut at max_output_bytes = 10 MB",
        lambda: _run_json(stdout=[("x" * 99 + "\n") * (_MB // 100)] * 50),
        10 * _MB,
    ),
    "result_50mb_truncated": (
        "one 50 MB text/plain result, cut at max_output_bytes = 10 MB",
        lambda: _run_json(results=[{"text": "y" * (50 * _MB), "is_main_result": False}]),
        10 * _MB,
    ),
}


def _render(shell: Any, run: Any, max_output_bytes: int | None) -> tuple[int, int]:
    """Render one finished run; returns (display outputs, stdout characters) captured."""
    from IPython.utils.capture import capture_output

    from sandbox_magic.client import OutputCursor
    from sandbox_magic.render.sink import OutputSink

    del shell  # the capture acts on the shell's display publisher and sys streams
    with capture_output() as captured:
        sink = (
            OutputSink()
            if max_output_bytes is None
            else OutputSink(max_output_bytes=max_output_bytes)
        )
        for output in OutputCursor().advance(run.execution):
            sink.emit(output)
        sink.main_value()
    return len(captured.outputs), len(captured.stdout)


def run_bridge(shell: Any, settings: Settings) -> dict[str, Any]:
    """Time and peak memory of rendering each case."""
    from sandbox_magic.client import Run

    results: dict[str, Any] = {}
    for name, (description, build, limit) in CASES.items():
        if settings.quick and name == "stdout_100k_chunks":
            continue
        payload = build()
        parse_start = time.perf_counter()
        run = Run.from_json(payload)
        parse_seconds = time.perf_counter() - parse_start
        times = []
        outputs = shown = 0
        for _ in range(settings.bridge_repeats):
            start = time.perf_counter()
            outputs, shown = _render(shell, run, limit)
            times.append(time.perf_counter() - start)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base, _ = tracemalloc.get_traced_memory()
            _render(shell, run, limit)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        results[name] = {
            "description": description,
            "render_ms": summarize(ms(times)),
            "parse_ms": parse_seconds * 1000,
            "peak_mb": (peak - base) / _MB,
            "display_outputs": outputs,
            "stdout_chars_shown": shown,
        }
        del payload, run
    return results
