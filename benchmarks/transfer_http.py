"""``--push`` / ``--pull`` of a large DataFrame through the whole path.

The magic in an in-process IPython shell, HTTP to a local server started for the
purpose, a real kernel behind it: what a notebook user sees, unlike
``transfer_throughput.py``, which talks to a kernel directly.

    python -m benchmarks.transfer_http [MEGABYTES]     # default 100
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from IPython.testing.globalipapp import start_ipython

from benchmarks.server import LocalServer
from benchmarks.transfer_throughput import make_frame
from sandbox_magic.notebook.extension import loaded_magics


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 100.0
    frame = make_frame(megabytes)
    with tempfile.TemporaryDirectory(prefix="sbm-transfer-http-") as workdir:
        server = LocalServer.start(Path(workdir) / "state")
        try:
            shell = start_ipython()
            assert shell is not None
            shell.run_line_magic("load_ext", "sandbox_magic")
            magics = loaded_magics(shell)
            magics.api_url, magics.api_key = server.url, server.token
            magics.keep_sandbox = False
            shell.run_cell("%%sandbox --quiet\n0")  # connect and warm the context
            shell.user_ns["frame"] = frame

            started = time.perf_counter()
            pushed = shell.run_cell("%%sandbox --quiet --push frame\nframe.shape")
            push_seconds = time.perf_counter() - started
            started = time.perf_counter()
            pulled = shell.run_cell("%%sandbox --quiet --pull back\nback = frame")
            pull_seconds = time.perf_counter() - started
            if not (pushed.success and pulled.success):
                raise SystemExit(f"transfer failed: {pushed.error_in_exec or pulled.error_in_exec}")
            pd.testing.assert_frame_equal(shell.user_ns["back"], frame)
            shell.run_line_magic("unload_ext", "sandbox_magic")
        finally:
            server.stop()
    print(f"DataFrame of {len(frame):,} rows, {megabytes:.0f} MB, through HTTP and the magic")
    print(f"push: {push_seconds:.1f} s -> {megabytes / push_seconds:.1f} MB/s")
    print(f"pull: {pull_seconds:.1f} s -> {megabytes / pull_seconds:.1f} MB/s (verified equal)")


if __name__ == "__main__":
    main()
