"""Case 5: what ``%load_ext sandbox_magic`` adds to a fresh IPython.

Each sample is a new Python process: IPython is started first (its own cost is not
ours), then ``%load_ext`` is timed. The modules it imported are counted too, since
import time is where the cost lies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from benchmarks.common import Settings, ms, summarize

__all__ = ["run_extension_load"]

_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    before = set(sys.modules)
    start = time.perf_counter()
    shell.run_line_magic("load_ext", "sandbox_magic")
    elapsed = time.perf_counter() - start
    new = set(sys.modules) - before
    heavy = sorted(m for m in ("httpx", "ipywidgets", "anyio", "httpcore") if m in new)
    print(json.dumps({"seconds": elapsed, "modules": len(new), "heavy": heavy}))
    """
)


def _once(env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"%load_ext in a fresh IPython failed:\n{completed.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def run_extension_load(settings: Settings) -> dict[str, Any]:
    """Median and p95 of the ``%load_ext`` time over fresh processes."""
    with tempfile.TemporaryDirectory(prefix="sbm-bench-ext-") as home:
        env = dict(os.environ, IPYTHONDIR=str(Path(home) / "ipython"))
        _once(env)  # the first start may compile bytecode; it is not what a user waits for
        samples = [_once(env) for _ in range(settings.load_ext_repeats)]
    return {
        "load_ext_ms": summarize(ms(s["seconds"] for s in samples)),
        "modules_imported": samples[-1]["modules"],
        "heavy_modules_imported": samples[-1]["heavy"],
    }
