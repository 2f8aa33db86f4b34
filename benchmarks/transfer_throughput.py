"""Push and pull throughput of a ~100 MB DataFrame against a real Jupyter kernel.

Run with the project's Python: ``python benchmarks/transfer_throughput.py [MB]``.

This measures the codec and kernel part only (encoding, base64, code submission over
ZeroMQ, remote decode and binding, and back). Through the magic, each run also goes
over HTTP to the sandbox server and through its run store and polling.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import numpy as np
import pandas as pd
from jupyter_client.manager import start_new_kernel

from sandbox_magic.client import RemoteExecutionError
from sandbox_magic.transfer import encode_value, probe, pull, push


def make_frame(megabytes: float) -> pd.DataFrame:
    """A frame of float, int, datetime and categorical columns (33 bytes a row)."""
    rows = int(megabytes * 1e6 / 33)
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "y": rng.normal(size=rows),
            "n": np.arange(rows, dtype=np.int64),
            "t": pd.date_range("2020-01-01", periods=rows, freq="s"),
            "c": pd.Categorical.from_codes(rng.integers(0, 8, size=rows), list("abcdefgh")),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("megabytes", type=float, nargs="?", default=100.0)
    parser.add_argument("--chunk-mib", type=float, default=4.0)
    parser.add_argument("--no-compress", action="store_true", help="send chunks uncompressed")
    args = parser.parse_args()
    chunk_bytes = int(args.chunk_mib * 1024 * 1024)

    frame = make_frame(args.megabytes)
    memory = frame.memory_usage(deep=True).sum() / 1e6
    manager, client = start_new_kernel(kernel_name="python3")
    runs = 0
    in_kernel = 0.0

    async def run_code(code: str) -> list[dict[str, Any]]:
        nonlocal runs, in_kernel
        started = time.perf_counter()
        bundles: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []

        def hook(msg: dict[str, Any]) -> None:
            if msg["msg_type"] in ("display_data", "execute_result"):
                bundles.append(msg["content"]["data"])
            elif msg["msg_type"] == "error":
                errors.append(msg["content"])

        client.execute_interactive(code, output_hook=hook, timeout=600)
        in_kernel += time.perf_counter() - started
        runs += 1
        if errors:
            raise RemoteExecutionError(errors[0]["ename"], errors[0]["evalue"], [])
        return bundles

    try:
        caps = asyncio.run(probe(run_code))
        start = time.perf_counter()
        encoded = encode_value(frame, formats=caps.formats, max_bytes=1 << 40)
        encode_s = time.perf_counter() - start
        size_mb = len(encoded.data) / 1e6
        print(
            f"DataFrame: {len(frame):,} rows, {memory:.1f} MB in memory, "
            f"{size_mb:.1f} MB as {encoded.format}; local encode {encode_s:.2f} s"
        )

        runs, in_kernel = 0, 0.0
        start = time.perf_counter()
        receipt = asyncio.run(
            push(
                run_code,
                "df",
                frame,
                chunk_bytes=chunk_bytes,
                compress=not args.no_compress,
                max_bytes=1 << 40,
                remote_capabilities=caps,
            )
        )
        push_s = time.perf_counter() - start
        print(
            f"push: {push_s:.2f} s in {runs} runs -> {size_mb / push_s:.1f} MB/s "
            f"({in_kernel:.2f} s of it waiting on the kernel)"
        )
        assert receipt.shape == frame.shape

        runs, in_kernel = 0, 0.0
        start = time.perf_counter()
        back = asyncio.run(pull(run_code, "df", chunk_bytes=chunk_bytes, max_bytes=1 << 40))
        pull_s = time.perf_counter() - start
        print(
            f"pull: {pull_s:.2f} s in {runs} runs -> {size_mb / pull_s:.1f} MB/s "
            f"({in_kernel:.2f} s of it waiting on the kernel)"
        )
        pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]
        print("round trip verified (pandas.testing.assert_frame_equal)")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


if __name__ == "__main__":
    sys.exit(main())
