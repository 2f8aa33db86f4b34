"""Issue 16's figures, before and after, side by side from one run.

Each variant runs in its own process (its own ``sandbox_magic``, its own local server):

- ``before``: the code of an earlier commit (``--baseline-src DIR``, a copy of its
  ``sandbox_magic`` package, e.g. ``git archive main sandbox_magic | tar -x -C DIR``);
- ``fallback``: this code against a server started with ``--no-long-poll
  --no-file-endpoints``, i.e. what a server like the hosted one gets;
- ``after``: this code against the local server with every feature on.

Per variant it measures:

1. **Trivial cell** (``1+1``): ``%%sandbox`` (status view on and ``--quiet``), the floor
   (raw HTTP, submit then poll every 2 ms), the service SDK's streaming ``run_code``,
   a bare ``jupyter_client`` execute round trip on an idle kernel, and the server-side
   duration of the magic's runs (``completed_at - created_at``). Methods take turns,
   in an order shuffled each round.
2. **Streaming run**: a run printing a line (its own ``time.time()``) every second for
   ``--stream-seconds``; requests counted at a proxy, and for each line the delay from
   its print in the sandbox to the cell writing it (same machine, same clock).
   The fixed 1 s poll (the SDK's ``create_run`` + ``wait_for_run``) runs the same code
   once, in the ``after`` variant, for the request ratio.
3. **Transfer**: ``--push`` then ``--pull`` of a DataFrame of ``--megabytes`` MB through
   the magic; verified equal.

    python -m benchmarks.speed --baseline-src DIR      # full run, a few minutes
    python -m benchmarks.speed --quick                 # the smoke test's size
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

if __package__ in (None, ""):  # run as a script by the parent: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.blocks import put_block
from benchmarks.common import REPO_ROOT, machine_facts, ms, summarize, take_turns

__all__ = ["VARIANTS", "main", "render"]

VARIANTS: dict[str, list[str]] = {
    "before": [],
    "fallback": ["--no-long-poll", "--no-file-endpoints"],
    "after": [],
}
_RESULT = "SPEED-RESULT "


# -- the worker: one variant, in its own process ----------------------------------------


class _Timestamped:
    """A stdout that notes when each write happened (the cell showing a line)."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.time(), text))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


@contextmanager
def _stdout(replacement: Any) -> Iterator[None]:
    saved = sys.stdout
    sys.stdout = replacement
    try:
        yield
    finally:
        sys.stdout = saved


def _kernel_round_trip() -> tuple[Callable[[], float], Callable[[], None]]:
    """A bare jupyter_client execute of ``1+1`` on an idle kernel: (measure, stop)."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3")

    def measure() -> float:
        start = time.perf_counter()
        reply = client.execute_interactive("1+1", output_hook=lambda _msg: None, timeout=30)
        elapsed = time.perf_counter() - start
        assert reply["content"]["status"] == "ok"
        return elapsed

    def stop() -> None:
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    return measure, stop


def _trivial(server: Any, magic: Any, rounds: int, warmup: int) -> dict[str, Any]:
    from benchmarks.drivers import SdkDriver, create_context, create_sandbox, floor_run
    from benchmarks.trivial import _server_durations

    code = "1+1"
    measure_kernel, stop_kernel = _kernel_round_trip()
    with server.client() as http:
        sandbox_id = create_sandbox(http)
        floor_context = create_context(http, sandbox_id)
        sdk = SdkDriver(server.url, server.token, sandbox_id)
        methods: dict[str, Callable[[], float]] = {
            "magic": lambda: magic.run(f"%%sandbox\n{code}")[0],
            "magic_quiet": lambda: magic.run(f"%%sandbox --quiet\n{code}")[0],
            "floor": lambda: floor_run(http, sandbox_id, floor_context, code)[0],
            "sdk_run_code": lambda: sdk.run_code(code)[0],
            "kernel_round_trip": measure_kernel,
        }
        try:
            for _ in range(warmup):
                for method in methods.values():
                    method()
            times = {name: ms(values) for name, values in take_turns(methods, rounds).items()}
            server_ms = [s * 1000 for s in _server_durations(http, magic.sandbox_id(), 2 * rounds)]
        finally:
            sdk.close()
            stop_kernel()
    result: dict[str, Any] = {name: summarize(values) for name, values in times.items()}
    result["server_duration_magic_runs"] = summarize(server_ms)
    return result


def _line_delays(writes: list[tuple[float, str]]) -> list[float]:
    """Per printed line: when the cell wrote it minus when the sandbox printed it (ms)."""
    delays: list[float] = []
    pending = ""
    for moment, text in writes:
        pending += text
        *complete, pending = pending.split("\n")
        for line in complete:
            if re.fullmatch(r"\d{9,}\.\d+", line.strip()):
                delays.append((moment - float(line)) * 1000)
    return delays


def _streaming(server: Any, magic: Any, seconds: int, with_fixed_poll: bool) -> dict[str, Any]:
    from benchmarks.drivers import SdkDriver, create_context, create_sandbox
    from benchmarks.polling import _requests
    from benchmarks.server import CountingProxy

    code = (
        "import time\n"
        f"for _ in range({seconds}):\n"
        "    print(f'{time.time():.6f}', flush=True)\n"
        "    time.sleep(1)"
    )
    proxy = CountingProxy(server.url).start()
    result: dict[str, Any] = {"seconds": seconds}
    try:
        magic.point_at(proxy.url, server.token)
        magic.run("%%sandbox --quiet\n0")  # session, sandbox and context exist from here
        before = proxy.counts()
        sink = _Timestamped()
        with _stdout(sink):
            outcome = magic.shell.run_cell(f"%%sandbox --quiet\n{code}")
        if not outcome.success:
            raise RuntimeError(f"the streaming run failed: {outcome.error_in_exec!r}")
        _, requests = _requests(before, proxy.counts())
        delays = _line_delays(sink.writes)
        if len(delays) != seconds:
            raise RuntimeError(f"expected {seconds} lines, the cell showed {len(delays)}")
        result["magic_requests"] = requests
        result["delay_ms"] = summarize(delays)
        if with_fixed_poll:
            with server.client(proxy.url) as http:
                sandbox_id = create_sandbox(http)
                context_id = create_context(http, sandbox_id)
            sdk = SdkDriver(proxy.url, server.token, sandbox_id)
            before = proxy.counts()
            sdk.create_and_wait(code, context_id)
            _, result["fixed_1s_poll_requests"] = _requests(before, proxy.counts())
            sdk.close()
    finally:
        magic.point_at(server.url, server.token)
        proxy.stop()
    return result


def _same_frame(a: Any, b: Any) -> bool:
    """Column by column, on the raw arrays (`assert_frame_equal` boxes every category)."""
    import numpy as np
    import pandas as pd

    if list(a.columns) != list(b.columns) or not a.index.equals(b.index):
        return False
    for name in a.columns:
        x, y = a[name], b[name]
        if isinstance(x.dtype, pd.CategoricalDtype):
            if list(x.cat.categories) != list(y.cat.categories):
                return False
            if not np.array_equal(x.cat.codes.to_numpy(), y.cat.codes.to_numpy()):
                return False
        elif not np.array_equal(x.to_numpy(), y.to_numpy()):
            return False
    return True


def make_frame(megabytes: float) -> Any:
    """Float, int, datetime and categorical columns, 33 bytes a row (as in
    ``transfer_throughput.py``, which imports the current package layout)."""
    import numpy as np
    import pandas as pd

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


def _transfer(magic: Any, megabytes: float) -> dict[str, Any]:
    shell = magic.shell
    shell.user_ns["frame"] = make_frame(0.01)  # warm: codec libraries imported on both sides
    magic.run("%%sandbox --quiet --push frame\nframe.shape")
    magic.run("%%sandbox --quiet --pull back\nback = frame")
    frame = make_frame(megabytes)
    shell.user_ns["frame"] = frame
    push_seconds, _ = magic.run("%%sandbox --quiet --push frame\nframe.shape")
    pull_seconds, _ = magic.run("%%sandbox --quiet --pull back\nback = frame")
    if not _same_frame(shell.user_ns.pop("back"), frame):
        raise RuntimeError("the pulled DataFrame differs from the pushed one")
    shell.user_ns.pop("frame")
    return {
        "megabytes": megabytes,
        "push_seconds": push_seconds,
        "pull_seconds": pull_seconds,
        "push_mb_per_s": megabytes / push_seconds,
        "pull_mb_per_s": megabytes / pull_seconds,
    }


def run_variant(config: dict[str, Any]) -> dict[str, Any]:
    """Every measurement of one variant (in this process)."""
    import sandbox_magic
    from benchmarks.drivers import MagicDriver
    from benchmarks.server import LocalServer

    with tempfile.TemporaryDirectory(prefix="sbm-speed-") as workdir:
        server = LocalServer.start(
            Path(workdir) / "state", warm_kernels=2, extra_args=list(config["server_args"])
        )
        magic: MagicDriver | None = None
        try:
            server.wait_for_idle_kernels(2)
            magic = MagicDriver(Path(workdir))
            magic.point_at(server.url, server.token)
            magic.magics.keep_sandbox = False
            result: dict[str, Any] = {
                "sandbox_magic": str(Path(sandbox_magic.__file__).parent),
                "server_args": config["server_args"],
            }
            result["trivial"] = _trivial(server, magic, config["rounds"], config["warmup"])
            result["streaming"] = _streaming(
                server, magic, config["stream_seconds"], config["fixed_poll"]
            )
            result["transfer"] = _transfer(magic, config["megabytes"])
            return result
        finally:
            if magic is not None:
                magic.close()
            server.stop()


# -- the parent: run the variants, show them side by side -----------------------------


def _spawn(config: dict[str, Any], source: Path | None, log: TextIO) -> dict[str, Any]:
    paths = [str(source)] if source is not None else []
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, str(REPO_ROOT)]))
    with tempfile.TemporaryDirectory(prefix="sbm-speed-cwd-") as cwd:  # no repo on sys.path
        completed = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(config)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    log.write(completed.stderr[-3000:])
    for line in completed.stdout.splitlines():
        if line.startswith(_RESULT):
            result: dict[str, Any] = json.loads(line[len(_RESULT) :])
            return result
    raise RuntimeError(
        f"variant {config['name']} failed (exit {completed.returncode}):\n"
        + completed.stderr[-3000:]
    )


def _median(entry: dict[str, Any] | None) -> float | None:
    if not entry or entry.get("n", 0) == 0:
        return None
    value = entry.get("median")
    return float(value) if value is not None else None


def _fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}{unit}"


def _difference(top: float | None, bottom: float | None) -> float | None:
    return None if top is None or bottom is None else top - bottom


def _ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def targets(results: dict[str, dict[str, Any]]) -> list[tuple[str, str, str, bool | None]]:
    """(target, limit, measured in ``after``, met) for the issue's targets."""
    after = results.get("after", {})
    trivial = after.get("trivial", {})
    magic = _median(trivial.get("magic"))
    sdk = _median(trivial.get("sdk_run_code"))
    floor = _median(trivial.get("floor"))
    server = _median(trivial.get("server_duration_magic_runs"))
    kernel = _median(trivial.get("kernel_round_trip"))
    streaming = after.get("streaming", {})
    delay = (streaming.get("delay_ms") or {}).get("p95")
    requests = _ratio(streaming.get("magic_requests"), streaming.get("fixed_1s_poll_requests"))
    transfer = after.get("transfer", {})
    rows: list[tuple[str, str, str, bool | None]] = []

    def row(name: str, limit: str, value: float | None, shown: str, ok: bool | None) -> None:
        rows.append((name, limit, shown, None if value is None else ok))

    ratio = _ratio(magic, sdk)
    row("trivial cell: `%%sandbox` / SDK `run_code`, medians", "<= 1.30x", ratio,
        _fmt(ratio, 2, "x"), ratio is not None and ratio <= 1.3)  # fmt: skip
    over = _difference(magic, floor)
    row("trivial cell: `%%sandbox` - floor, medians", "<= 5 ms", over, _fmt(over, 1, " ms"),
        over is not None and over <= 5)  # fmt: skip
    row("streaming run: p95 delay, print to cell", "<= 100 ms", delay, _fmt(delay, 1, " ms"),
        delay is not None and delay <= 100)  # fmt: skip
    row("streaming run: requests / fixed 1 s poll", "<= 0.50x", requests,
        _fmt(requests, 2, "x"), requests is not None and requests <= 0.5)  # fmt: skip
    server_ratio = _ratio(server, kernel)
    row("server-side `1+1` / bare kernel round trip, medians", "<= 2.00x", server_ratio,
        _fmt(server_ratio, 2, "x"), server_ratio is not None and server_ratio <= 2)  # fmt: skip
    for way in ("push", "pull"):
        rate = transfer.get(f"{way}_mb_per_s")
        row(f"{way} of a {transfer.get('megabytes', '?')} MB DataFrame", ">= 50 MB/s", rate,
            _fmt(rate, 1, " MB/s"), rate is not None and rate >= 50)  # fmt: skip
    return rows


def _column(result: dict[str, Any], fixed: int | None) -> dict[str, str]:
    """One variant's figures, formatted, keyed by row label."""
    trivial, streaming, transfer = result["trivial"], result["streaming"], result["transfer"]
    magic, sdk = _median(trivial.get("magic")), _median(trivial.get("sdk_run_code"))
    floor = _median(trivial.get("floor"))
    server = _median(trivial.get("server_duration_magic_runs"))
    kernel = _median(trivial.get("kernel_round_trip"))
    delay = streaming["delay_ms"]
    return {
        "`%%sandbox`, median": _fmt(magic),
        "`%%sandbox`, p95": _fmt(trivial["magic"].get("p95")),
        "`%%sandbox --quiet`, median": _fmt(_median(trivial.get("magic_quiet"))),
        "floor: raw HTTP, poll every 2 ms, median": _fmt(floor),
        "SDK streaming `run_code`, median": _fmt(sdk),
        "server-side duration of the magic's runs, median": _fmt(server),
        "bare `jupyter_client` round trip, median": _fmt(kernel),
        "`%%sandbox` / SDK `run_code`": _fmt(_ratio(magic, sdk), 2, "x"),
        "`%%sandbox` - floor": _fmt(_difference(magic, floor)),
        "server-side / kernel round trip": _fmt(_ratio(server, kernel), 2, "x"),
        "requests of `%%sandbox` (submit included)": str(streaming["magic_requests"]),
        "… against a fixed 1 s poll": _fmt(_ratio(streaming["magic_requests"], fixed), 2, "x"),
        "delay from print to cell, median (ms)": _fmt(delay.get("median")),
        "delay from print to cell, p95 (ms)": _fmt(delay.get("p95")),
        "delay from print to cell, max (ms)": _fmt(delay.get("max")),
        "push, s": _fmt(transfer["push_seconds"], 2),
        "push, MB/s": _fmt(transfer["push_mb_per_s"]),
        "pull, s": _fmt(transfer["pull_seconds"], 2),
        "pull, MB/s": _fmt(transfer["pull_mb_per_s"]),
    }


_SECTIONS: tuple[tuple[str, int], ...] = (
    ("### Trivial cell (`1+1`), ms", 10),
    ("### A {seconds} s run printing a line every second", 5),
    ("### Push and pull of a {megabytes:g} MB DataFrame through the magic", 4),
)


def render(results: dict[str, dict[str, Any]]) -> str:
    """The side-by-side tables, as Markdown."""
    names = [name for name in VARIANTS if name in results]
    first = results[names[0]]
    fixed = next(
        (
            r["streaming"]["fixed_1s_poll_requests"]
            for r in results.values()
            if "fixed_1s_poll_requests" in r["streaming"]
        ),
        None,
    )
    columns = {name: _column(results[name], fixed) for name in names}
    labels = list(columns[names[0]])
    out: list[str] = []
    for title, count in _SECTIONS:
        heading = title.format(
            seconds=first["streaming"]["seconds"], megabytes=first["transfer"]["megabytes"]
        )
        out += [f"\n{heading}\n\n", "| | " + " | ".join(names) + " |\n"]
        out.append("|---|" + "---:|" * len(names) + "\n")
        for label in labels[:count]:
            out.append(f"| {label} | " + " | ".join(columns[n][label] for n in names) + " |\n")
        labels = labels[count:]
    if fixed is not None:
        out.append(f"\nFixed 1 s poll (SDK `wait_for_run`) of the same run: {fixed} requests.\n")
    out += ["\n### Targets (the `after` column)\n\n", "| target | limit | measured | met |\n"]
    out.append("|---|---:|---:|---|\n")
    for name, limit, shown, ok in targets(results):
        verdict = "not measured" if ok is None else ("**met**" if ok else "**missed**")
        out.append(f"| {name} | {limit} | {shown} | {verdict} |\n")
    return "".join(out)


def _section(results: dict[str, dict[str, Any]], tables: str, *, date: str, load: str) -> str:
    """The BENCHMARKS.md section: how it was made, the machine, the tables."""
    facts = machine_facts()
    head = (
        "## Issue 16: watching runs, a leaner run, file transfers (`benchmarks/speed.py`)\n\n"
        "Measured in one run of `python -m benchmarks.speed"
        + (" --baseline-src DIR" if "before" in results else "")
        + f"` on {date} ({facts['cpu_model']}, {facts['logical_cores']} cores, "
        f"{load}). Each column "
        "is its own process with its own local server:\n\n"
        "- `before`: the code of the commit before this work (`DIR` from "
        "`git archive <commit> sandbox_magic`);\n"
        "- `fallback`: this code against `sandbox-magic serve --no-long-poll "
        "--no-file-endpoints`, i.e. what a server like the hosted service gets;\n"
        "- `after`: this code against the local server with run watching and file "
        "endpoints.\n"
    )
    return head + tables + _NOTES


_NOTES = """
### Where the time went, and what changed

- **Trivial cell.** Before, a `%%sandbox` cell cost a submit, then polls from 20 ms on;
  the server spends a few ms of its own around the kernel's round trip (three small
  SQLite writes of about 0.1 ms, two directory snapshots of 0.05 ms, the JSON of the
  record), and every poll made it serialise the whole run record again on the event
  loop the kernel's messages go through. Now a submit to a server that can watch runs
  waits (at most 250 ms, and at most 50 ms past the first output) for the run to end:
  a trivial cell is one request, and a cell whose submit answered the finished run
  renders it without a trip to the I/O loop. A cell whose poll ends now wakes at
  once instead of at its next 100 ms tick.
- **Long runs.** On a server that advertises `run-watch`, one request stays open up
  to 25 s and carries each change as it happens (NDJSON), so a line printed in the
  sandbox reaches the cell in milliseconds, and a 20 s run costs two requests.
  Servers without it (the hosted one, or `--no-long-poll`) are polled as before.
- **Push and pull.** The payload travels as one raw file through `PUT`/`GET .../file`
  instead of base64 inside code the kernel has to parse; the sha256 is checked on
  the receiving side as before. What is left is encoding, hashing and HTTP, all CPU
  bound.
- **Trivial cell against the SDK.** The cell's own client work was the gap. CPU per
  cell in one process per way of running: the client side of `%%sandbox` used 7-8 ms,
  the SDK's `run_code` 2-2.5 ms, the server and the kernel the same for both; 5 ms of
  the 7-8 were the private I/O loop's thread for one held submit (asyncio, anyio,
  two thread hops). Once the server, sandbox and context are known, a blocking cell
  now sends its held submit from its own thread with a synchronous httpx client (the
  loop keeps everything else: the first cell, background runs, following long runs,
  and any answer that is not a clean held one, sent again under the same idempotency
  key). Also off the path: httpcore's failed `import sniffio` on every request
  (sniffio is now a dependency), the settings snapshot and credential lookup (made
  again only when something changed), and the journal write (one `write` after the
  answer instead of during the kernel's turn, 0.13 to 0.04 ms). On the server, the
  code goes to the kernel before the run's "running" record and the idempotency
  key are stored. The methods now take turns in a shuffled order: in a fixed order
  the SDK always followed the 2 ms poll, which left the CPUs awake for it (its median
  was 1 ms lower in that seat).
- **Server.** The kernel's channels are read by two asyncio tasks on zmq sockets (no
  polling) and small working directories are snapshotted inline (no executor hop);
  the store write when a run starts stays (listings by status read the store), now
  just after the code is sent.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed", description=__doc__)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--baseline-src", type=Path, help="a copy of an earlier sandbox_magic")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--stream-seconds", type=int, default=20)
    parser.add_argument("--megabytes", type=float, default=100.0)
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    parser.add_argument(
        "--markdown", type=Path, help="put the tables into this file's `speed` block"
    )
    parser.add_argument(
        "--from-json", type=Path, help="run nothing: render the figures of an earlier --json"
    )
    parser.add_argument("--conditions", help=argparse.SUPPRESS)  # how it ran, if known
    args = parser.parse_args(argv)
    if args.worker:
        print(_RESULT + json.dumps(run_variant(json.loads(args.worker))), flush=True)
        return 0
    if args.from_json is not None:
        earlier: dict[str, dict[str, Any]] = json.loads(args.from_json.read_text())
        tables = render(earlier)
        print(tables)
        if args.markdown is not None:
            written = datetime.fromtimestamp(args.from_json.stat().st_mtime, UTC)
            date = written.isoformat(timespec="seconds")
            section = _section(
                earlier, tables, date=date, load=args.conditions or "load not recorded"
            )
            put_block(args.markdown, "speed", section)
        return 0
    rounds, warmup = (3, 1) if args.quick else (args.rounds, 5)
    stream_seconds = 2 if args.quick else args.stream_seconds
    megabytes = 1.0 if args.quick else args.megabytes
    results: dict[str, dict[str, Any]] = {}
    for name, server_args in VARIANTS.items():
        source = args.baseline_src if name == "before" else None
        if name == "before" and source is None:
            continue
        config = {
            "name": name,
            "server_args": server_args,
            "rounds": rounds,
            "warmup": warmup,
            "stream_seconds": stream_seconds,
            "megabytes": megabytes,
            "fixed_poll": name == "after",
        }
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        results[name] = _spawn(config, source, sys.stderr)
        print(f"{name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    tables = render(results)
    print(tables)
    if args.markdown is not None:
        date = datetime.now(UTC).isoformat(timespec="seconds")
        load = f"load average {os.getloadavg()[0]:.1f} at the end"
        put_block(args.markdown, "speed", _section(results, tables, date=date, load=load))
    return 0 if all(ok is not False for *_, ok in targets(results)) or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
