"""Run every benchmark against a local server started for the purpose; write the report.

Usage (from the repository root, with the project's Python)::

    python -m benchmarks            # the full run (a few minutes), writes BENCHMARKS.md
    python -m benchmarks --quick    # a tiny configuration, for the smoke test

A case that fails is recorded with its error and the others still run; the exit code
is then 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import REPO_ROOT, Settings, machine_facts

__all__ = ["CASE_NAMES", "main"]

CASE_NAMES = ("extension_load", "trivial", "polling", "bridge", "local_server", "transfer")


def _log(message: str, started: float) -> None:
    print(f"[{time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def _transfer(quick: bool) -> dict[str, Any]:
    """The push/pull throughput script of `benchmarks.transfer_throughput`, if present."""
    script = Path(__file__).with_name("transfer_throughput.py")
    if quick:
        return {"skipped": "not part of the quick configuration"}
    if not script.exists():
        return {"skipped": "benchmarks/transfer_throughput.py is not there"}
    megabytes = 20
    completed = subprocess.run(
        [sys.executable, str(script), str(megabytes)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"transfer_throughput.py failed:\n{completed.stderr[-2000:]}")
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    result: dict[str, Any] = {"megabytes": megabytes, "output": lines}
    for direction in ("push", "pull"):
        for line in lines:
            match = re.match(rf"{direction}: ([\d.]+) s in (\d+) runs -> ([\d.]+) MB/s", line)
            if match:
                result[direction] = {
                    "seconds": float(match.group(1)),
                    "runs": int(match.group(2)),
                    "mb_per_second": float(match.group(3)),
                }
    return result


def run_all(settings: Settings, cases: Sequence[str], workdir: Path) -> dict[str, Any]:
    """Every selected case, in one run, against one local server (plus a cold one)."""
    from benchmarks.bridge import run_bridge
    from benchmarks.drivers import MagicDriver
    from benchmarks.extension_load import run_extension_load
    from benchmarks.local_server import run_local_server
    from benchmarks.polling import run_polling
    from benchmarks.server import LocalServer
    from benchmarks.trivial import run_trivial

    started = time.perf_counter()
    report: dict[str, Any] = {
        "settings": settings.as_dict(),
        "machine": machine_facts(),
        "load_average_at_start": _load_average(),
        "cases": {},
        "errors": {},
    }
    _log("starting the local server", started)
    server = LocalServer.start(workdir / "state", warm_kernels=2)
    magic: MagicDriver | None = None
    try:
        server.wait_for_idle_kernels(2)
        steps: dict[str, Callable[[], dict[str, Any]]] = {
            # Fresh processes first, while nothing of ours runs in the background.
            "extension_load": lambda: run_extension_load(settings),
            "trivial": lambda: run_trivial(server, magic_driver(), settings),
            "polling": lambda: run_polling(server, magic_driver(), settings),
            "bridge": lambda: run_bridge(magic_driver().shell, settings),
            "local_server": lambda: run_local_server(server, workdir, settings),
            "transfer": lambda: _transfer(settings.quick),
        }

        def magic_driver() -> MagicDriver:
            nonlocal magic
            if magic is None:
                magic = MagicDriver(workdir)
            return magic

        for name in CASE_NAMES:
            if name not in cases:
                continue
            _log(f"{name} ...", started)
            try:
                report["cases"][name] = steps[name]()
            except Exception as exc:
                report["errors"][name] = "".join(traceback.format_exception(exc))[-4000:]
                _log(f"{name} FAILED: {exc!r}", started)
    finally:
        if magic is not None:
            magic.close()
        server.stop()
    report["load_average_at_end"] = _load_average()
    report["total_seconds"] = time.perf_counter() - started
    _log("done", started)
    return report


def _write_markdown(path: Path, text: str) -> None:
    """Write the report, keeping the blocks other scripts own (`benchmarks.blocks`)."""
    from benchmarks.blocks import blocks_of

    kept = blocks_of(path.read_text()) if path.exists() else ""
    path.write_text(text + ("\n" + kept if kept else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmarks of sandbox_magic (issue 7)."
    )
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (smoke test)")
    parser.add_argument(
        "--json",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "results.json",
        help="where to write the figures (default benchmarks/results.json)",
    )
    parser.add_argument(
        "--markdown",
        type=Path,
        default=REPO_ROOT / "BENCHMARKS.md",
        help="where to write the report (default BENCHMARKS.md)",
    )
    parser.add_argument(
        "--only",
        default=",".join(CASE_NAMES),
        help=f"comma-separated cases to run (default all: {','.join(CASE_NAMES)})",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="run nothing: write the Markdown again from the existing JSON file",
    )
    args = parser.parse_args(argv)
    from benchmarks.report import evaluate_targets, render_markdown

    if args.render_only:
        report = json.loads(args.json.read_text())
        report["targets"] = evaluate_targets(report)
        _write_markdown(args.markdown, render_markdown(report))
        print(f"wrote {args.markdown}", file=sys.stderr)
        return 0
    cases = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(cases) - set(CASE_NAMES))
    if unknown:
        parser.error(f"unknown case(s): {', '.join(unknown)}")
    settings = Settings.quick_settings() if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="sbm-bench-") as workdir:
        report = run_all(settings, cases, Path(workdir))
    report["targets"] = evaluate_targets(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n")
    _write_markdown(args.markdown, render_markdown(report))
    print(f"wrote {args.json} and {args.markdown}", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
