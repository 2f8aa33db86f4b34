"""``python -m benchmarks classroom``: 30 simulated students on one local server.

Each student has its own key (made over ``/v1/keys``), sandbox and context, and runs
trivial cells (``1 + 1``): submit, then long-poll the run until it ends; the latency
is from the submit to the answer that shows the end. Cases, all in one run against
one server:

- ``alone``: one student, cells back to back -> the reference of ``back_to_back``;
- ``alone_paced``: one student at human pace -> the reference of the paced cases;
- ``human``: all 30 at human pace (think 0.5-2.5 s between cells);
- ``back_to_back``: all 30 submitting the next cell as soon as one ends;
- ``cpu_loops``: 5 students each running 10 s CPU loops, again and again, while the
  other 25 work at human pace (only the 25 are measured).

Each case's trivial-cell p95 is divided by the median of one student alone at the
same pace: the ratios the classroom issue targets (<= 2, <= 8, <= 3). The pace
matters on its own: a cell after a pause finds the student's kernel and the machine's
CPUs asleep, one right after another finds them awake, so the class is compared with
a student working the same way alone. Also measured: the 30 contexts created at
once (wall time, failures) and the memory of the server and its 30 kernels. Figures
go to ``benchmarks/classroom.json`` and to the classroom section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.common import REPO_ROOT, machine_facts, ms, summarize
from benchmarks.server import LocalServer

__all__ = ["TARGETS", "main", "render_section", "run_classroom"]

#: Case -> the largest acceptable ratio of its p95 to the median of its reference.
TARGETS = {"human": 2.0, "back_to_back": 8.0, "cpu_loops": 3.0}
#: Case -> one student alone at the same pace.
REFERENCES = {"human": "alone_paced", "back_to_back": "alone", "cpu_loops": "alone_paced"}
LOOP_CODE = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 10:\n    pass"
JSON_PATH = REPO_ROOT / "benchmarks" / "classroom.json"
_TIMES = "\N{MULTIPLICATION SIGN}"
_DASH = "\N{EN DASH}"
_START = "<!-- classroom:start -->"
_END = "<!-- classroom:end -->"


@dataclass(frozen=True)
class Plan:
    students: int = 30
    loopers: int = 5
    alone_cells: int = 40
    human_seconds: float = 30.0
    back_to_back_seconds: float = 15.0
    loops_seconds: float = 30.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            students=4,
            loopers=1,
            alone_cells=5,
            human_seconds=3.0,
            back_to_back_seconds=2.0,
            loops_seconds=4.0,
        )


class Student:
    """One simulated student: a key, a client, a sandbox and a context."""

    def __init__(self, url: str, name: str, key: str) -> None:
        self.name = name
        self.http = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120.0
        )
        self.sandbox_id = ""
        self.context_id = ""

    async def setup(self) -> None:
        response = await self.http.post("/v1/sandboxes", json={})
        response.raise_for_status()
        self.sandbox_id = response.json()["id"]
        response = await self.http.post(f"/v1/sandboxes/{self.sandbox_id}/code/contexts", json={})
        response.raise_for_status()
        self.context_id = response.json()["id"]

    async def _get(self, path: str, params: dict[str, str]) -> httpx.Response:
        for attempt in range(3):  # a kept-alive connection the server just closed
            try:
                return await self.http.get(path, params=params)
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def cell(self, code: str = "1 + 1") -> float:
        """Seconds from submitting ``code`` to seeing its run end."""
        base = f"/v1/sandboxes/{self.sandbox_id}/code/runs"
        start = time.perf_counter()
        body = {"code": code, "context_id": self.context_id, "timeout": 60}
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        # Held, as the magic's submit is on this server: a short run answers finished.
        held = {"wait_ms": "10000"}
        for attempt in range(3):  # a kept-alive connection the server just closed
            try:
                response = await self.http.post(base, json=body, headers=headers, params=held)
                break
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
                if attempt == 2:
                    raise
        response.raise_for_status()
        run = response.json()
        version = response.headers.get("x-run-version", "0")
        while run["status"] not in ("succeeded", "failed", "cancelled"):
            response = await self._get(
                f"{base}/{run['id']}", {"wait_ms": "10000", "after_version": version}
            )
            response.raise_for_status()
            run = response.json()
            version = response.headers.get("x-run-version", version)
        elapsed = time.perf_counter() - start
        if run["status"] != "succeeded":
            raise RuntimeError(f"a benchmark cell ended {run['status']}: {run['failure_reason']}")
        return elapsed


async def _human(
    student: Student,
    until: float,
    measure_from: float,
    sink: list[float],
    cells: int | None = None,
) -> None:
    """Cells with a think time of 0.5-2.5 s before each, until ``until`` (or ``cells``)."""
    rng = random.Random(student.name)
    while cells is None or len(sink) < cells:
        await asyncio.sleep(rng.uniform(0.5, 2.5))
        if time.perf_counter() >= until:
            return
        started = time.perf_counter()
        latency = await student.cell()
        if started >= measure_from:
            sink.append(latency)


async def _back_to_back(student: Student, until: float, sink: list[float]) -> None:
    while time.perf_counter() < until:
        sink.append(await student.cell())


async def _looping(student: Student, until: float) -> int:
    loops = 0
    while time.perf_counter() < until:
        await student.cell(LOOP_CODE)
        loops += 1
    return loops


def _load() -> list[float] | None:
    try:
        return [round(value, 1) for value in os.getloadavg()]
    except OSError:
        return None


def _cpu_seconds(server: LocalServer) -> dict[str, float]:
    """CPU time used so far by the server, its kernels and this (client) process."""
    kernels = 0.0
    for kernel in server.kernels():
        with contextlib.suppress(psutil.Error):
            times = kernel.cpu_times()
            kernels += times.user + times.system
    own = psutil.Process().cpu_times()
    main = psutil.Process(server.process.pid).cpu_times()
    return {
        "server": main.user + main.system,
        "kernels": kernels,
        "clients": own.user + own.system,
    }


class _CpuShare:
    """CPU used by each part during a case, as cores busy on average."""

    def __init__(self, server: LocalServer) -> None:
        self._server = server
        self._start = _cpu_seconds(server)
        self._began = time.perf_counter()

    def result(self) -> dict[str, float]:
        end = _cpu_seconds(self._server)
        wall = time.perf_counter() - self._began
        return {part: round((end[part] - self._start[part]) / wall, 2) for part in end}


def _memory(server: LocalServer) -> dict[str, Any]:
    """Memory of the kernels, counting what confines them (bwrap, slirp4netns) too."""
    kernels = server.kernels()
    uss = rss = 0
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process(server.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                info = process.memory_full_info()
                uss += info.uss
                rss += info.rss
    server_info = psutil.Process(server.process.pid).memory_full_info()
    return {
        "kernels": len(kernels),
        "kernels_uss_mb": round(uss / 2**20, 1),
        "kernels_rss_mb": round(rss / 2**20, 1),
        "server_rss_mb": round(server_info.rss / 2**20, 1),
        "per_student_uss_mb": round(uss / 2**20 / max(1, len(kernels)), 1),
    }


async def _run(server: LocalServer, plan: Plan, log: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers) as admin:
        keys = []
        for index in range(plan.students):
            made = await admin.post("/v1/keys", json={"name": f"student-{index:02d}"})
            made.raise_for_status()
            keys.append(made.json()["key"])
    students = [Student(server.url, f"student-{i:02d}", key) for i, key in enumerate(keys)]
    report: dict[str, Any] = {"students": plan.students}
    try:
        log(f"creating {plan.students} sandboxes and contexts at once")
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(s.setup() for s in students), return_exceptions=True)
        failed = [repr(o) for o in outcomes if isinstance(o, BaseException)]
        report["contexts_at_once"] = {
            "count": plan.students,
            "seconds": round(time.perf_counter() - started, 1),
            "failed": len(failed),
            "errors": failed[:3],
        }
        if failed:
            raise RuntimeError(f"{len(failed)} students could not start: {failed[:3]}")
        for student in students:  # one cell each so every kernel has imported what it needs
            await student.cell()
        report["memory"] = _memory(server)

        log("alone: one student, back to back")
        alone = [await students[0].cell() for _ in range(plan.alone_cells)]
        report["alone"] = summarize(ms(alone))
        log("alone_paced: one student at human pace")
        paced_alone: list[float] = []
        await _human(students[0], float("inf"), 0.0, paced_alone, cells=plan.alone_cells)
        report["alone_paced"] = summarize(ms(paced_alone))

        log("human: everyone at human pace")
        share = _CpuShare(server)
        now = time.perf_counter()
        human: list[float] = []
        await asyncio.gather(
            *(_human(s, now + plan.human_seconds, now + 2.5, human) for s in students)
        )
        report["human"] = summarize(ms(human))
        report["human"]["cores_busy"] = share.result()

        log("back_to_back: everyone as fast as they can")
        share = _CpuShare(server)
        now = time.perf_counter()
        burst: list[float] = []
        await asyncio.gather(
            *(_back_to_back(s, now + plan.back_to_back_seconds, burst) for s in students)
        )
        report["back_to_back"] = summarize(ms(burst))
        report["back_to_back"]["cores_busy"] = share.result()

        log(f"cpu_loops: {plan.loopers} CPU loops, the others at human pace")
        share = _CpuShare(server)
        now = time.perf_counter()
        paced: list[float] = []
        loopers, others = students[: plan.loopers], students[plan.loopers :]
        until = now + plan.loops_seconds
        loops = await asyncio.gather(
            *(_looping(s, until) for s in loopers),
            *(_human(s, until, now + 2.0, paced) for s in others),
        )
        report["cpu_loops"] = summarize(ms(paced))
        report["cpu_loops"]["cores_busy"] = share.result()
        report["cpu_loops"]["loops_finished"] = sum(n for n in loops if isinstance(n, int))
        report["memory_after"] = _memory(server)
    finally:
        for student in students:
            await student.http.aclose()
    report["ratios"] = {}
    for case, target in TARGETS.items():
        ratio = report[case]["p95"] / report[REFERENCES[case]]["median"]
        report["ratios"][case] = {
            "reference": REFERENCES[case],
            "p95_over_reference_median": round(ratio, 2),
            "target": target,
            "met": ratio <= target,
        }
    return report


def run_classroom(plan: Plan, workdir: Path, *, extra_args: Sequence[str] = ()) -> dict[str, Any]:
    began = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - began:6.1f} s] {message}", file=sys.stderr, flush=True)

    # As a teacher runs it: confined wherever bubblewrap works (cgroups, CPU weights).
    server = LocalServer.start(
        workdir / "state", warm_kernels=2, isolation="auto", extra_args=list(extra_args)
    )
    try:
        server.wait_for_idle_kernels(2)
        with server.client() as http:
            isolation = http.get("/healthz").json().get("isolation", {})
        report = asyncio.run(_run(server, plan, log))
        report["isolation"] = {k: isolation.get(k) for k in ("mode", "limits")}
    finally:
        server.stop()
    report["seconds"] = round(time.perf_counter() - began, 1)
    return report


def _fmt(value: Any) -> str:
    if value is None:
        return _DASH
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def render_section(results: dict[str, Any]) -> str:
    """The Markdown of the classroom section of BENCHMARKS.md."""
    runs = results["runs"]
    lines = [
        _START,
        "## Classroom: 30 students on one server",
        "",
        f"`python -m benchmarks classroom` on {results['machine']['date']} "
        f"({results['machine']['logical_cores']} cores): {runs[0]['report']['students']} "
        "students, each with its own key, sandbox and context; trivial cells (`1 + 1`), "
        "submitted as the magic submits to this server (held until the run ends, then a long "
        "poll if it has not). Ratio = the case's p95 over the median of one student "
        "alone at the same pace (back to back, or at human pace), in the same run: after "
        "a pause a cell finds the student's kernel and the CPUs asleep, so pace alone "
        "changes a cell's time.",
        "",
        "| case | "
        + " | ".join(f"{run['label']}: median / p95 ms | ratio" for run in runs)
        + " | target | issue's figure before |",
        "|---|" + "---|---|" * len(runs) + "---|---|",
    ]
    before = {
        "alone": "26 ms",
        "alone_paced": _DASH,
        "human": "p95 30 ms",
        "back_to_back": f"p95 622 ms, about 24{_TIMES}",
        "cpu_loops": "p95 107 ms",
    }
    for case, label in (
        ("alone", "one student alone, back to back"),
        ("alone_paced", f"one student alone at human pace (0.5{_DASH}2.5 s)"),
        ("human", f"30 at human pace (0.5{_DASH}2.5 s)"),
        ("back_to_back", "30 back to back"),
        ("cpu_loops", "5 running 10 s CPU loops, 25 at human pace"),
    ):
        cells = []
        for run in runs:
            stats = run["report"].get(case)
            if stats is None:  # a run from before this case existed
                cells.append(f"{_DASH} | ")
                continue
            ratio = run["report"]["ratios"].get(case)
            shown = "" if ratio is None else f"{_ratio_of(ratio):.2f}{_TIMES}"
            cells.append(
                f"{_fmt(stats['median'])} / {_fmt(stats['p95'])} (n={stats['n']}) | {shown}"
            )
        target = (
            f"\N{LESS-THAN OR EQUAL TO} {TARGETS[case]:g}{_TIMES}"
            if case in TARGETS
            else "reference"
        )
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} | {before[case]} |")
    first = runs[0]["report"]
    memory, burst = first["memory"], first["contexts_at_once"]
    isolation = first.get("isolation") or {}
    lines += [
        "",
        f"- Isolation in force: {isolation.get('mode', 'none')} "
        f"(limits: {isolation.get('limits') or 'none'}).",
        f"- {burst['count']} sandboxes and contexts created at once: {burst['seconds']} s, "
        f"{burst['failed']} failed (kernel starts go {results.get('start_slots', 'a few')} at a "
        "time, one student at a time in turn).",
        f"- Memory for {memory['kernels']} kernels: {memory['kernels_uss_mb']} MB unique "
        f"({memory['per_student_uss_mb']} MB per student; {memory['kernels_rss_mb']} MB "
        f"resident counting shared pages); the server itself {memory['server_rss_mb']} MB.",
        *_cpu_lines(runs),
        *_burst_limit(results),
        f"- Machine load average (1, 5, 15 min) at the start: {results.get('load_start')}, "
        f"at the end: {results.get('load_end')}. When the cores busy above add up to much "
        "less than the machine's cores, other work on the machine, not the server, set the "
        "pace, and the ratios say little.",
        "",
        _END,
    ]
    return "\n".join(lines)


def _ratio_of(ratio: dict[str, Any]) -> float:
    """A case's ratio (runs recorded before the paced reference named it differently)."""
    value = ratio.get("p95_over_reference_median", ratio.get("p95_over_alone_median"))
    return float(value)


def _cpu_lines(runs: list[dict[str, Any]]) -> list[str]:
    """Cores busy per part in each case: what the class itself used of the machine."""
    lines = []
    for run in runs:
        parts = []
        for case in ("human", "back_to_back", "cpu_loops"):
            busy = run["report"][case].get("cores_busy")
            if busy:
                total = round(sum(busy.values()), 2)
                parts.append(
                    f"{case}: server {busy['server']}, kernels {busy['kernels']}, "
                    f"simulated students {busy['clients']} (in all {total})"
                )
        if parts:
            lines.append(f"- Cores busy ({run['label']}): " + "; ".join(parts) + ".")
    return lines


def _burst_limit(results: dict[str, Any]) -> list[str]:
    """What bounds 30 back to back: CPU per cell, and the wait it implies (Little's law)."""
    report = results["runs"][0]["report"]
    burst, seconds = report["back_to_back"], results["plan"]["back_to_back_seconds"]
    busy, cores = burst.get("cores_busy"), results["machine"]["logical_cores"]
    if not busy or not burst["n"] or not seconds:
        return []
    rate = burst["n"] / seconds
    per_cell = {part: 1000 * cores_busy / rate for part, cores_busy in busy.items()}
    total = sum(per_cell.values())
    students = report["students"]
    wait = students * total / cores
    alone, limit = report["alone"]["median"], TARGETS["back_to_back"]
    floor = wait / alone  # the ratio of the mean wait alone; a p95 is above it
    cores_for_limit = math.ceil(students * total / (limit * alone))
    cpu_for_limit = total * limit * alone / wait
    return [
        f"- What limits 30 back to back: CPU. Each cell cost {total:.1f} ms of CPU (server "
        f"{per_cell['server']:.1f}, kernel {per_cell['kernels']:.1f}, simulated student "
        f"{per_cell['clients']:.1f}) and the {cores} cores were busy, so with {students} "
        f"students each waiting for their last cell, a cell waits about {students} "
        f"{_TIMES} {total:.1f} / {cores} = {wait:.0f} ms (Little's law; measured median "
        f"{burst['median']:.0f} ms), in whatever order the cells are served. Against one "
        f"student's {alone:.1f} ms that is {floor:.1f}{_TIMES} for the mean alone, so no "
        f"scheduling brings the p95 within {limit:g}{_TIMES} on {cores} cores: that takes "
        f"about {cores_for_limit} cores at this CPU per cell, or {cpu_for_limit:.1f} ms "
        f"of CPU per cell on {cores} (the kernel alone spends {per_cell['kernels']:.1f}). "
        "Fairness decides who waits, not how long the queue is.",
    ]


def write_section(markdown_path: Path, section: str) -> None:
    """Put the section into BENCHMARKS.md, replacing an earlier one."""
    text = markdown_path.read_text() if markdown_path.exists() else ""
    if _START in text and _END in text:
        head, rest = text.split(_START, 1)
        tail = rest.split(_END, 1)[1]
        text = head + section + tail
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    markdown_path.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks classroom", description="30 students on one local server."
    )
    parser.add_argument("--quick", action="store_true", help="4 students, seconds per case")
    parser.add_argument("--json", type=Path, default=JSON_PATH)
    parser.add_argument("--markdown", type=Path, default=REPO_ROOT / "BENCHMARKS.md")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also run on a server started with --no-cpu-demotion, side by side",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="run nothing: rewrite the section from --json"
    )
    args = parser.parse_args(argv)
    if args.render_only:
        write_section(args.markdown, render_section(json.loads(args.json.read_text())))
        return 0
    plan = Plan.quick() if args.quick else Plan()
    runs = []
    load_start = _load()
    configurations = [("fair share", ())]
    if args.compare:
        configurations.append(("without CPU demotion", ("--no-cpu-demotion",)))
    for label, extra in configurations:
        with tempfile.TemporaryDirectory(prefix="sbm-class-") as workdir:
            runs.append(
                {"label": label, "report": run_classroom(plan, Path(workdir), extra_args=extra)}
            )
    results = {
        "machine": machine_facts(),
        "plan": plan.__dict__,
        "runs": runs,
        "load_start": load_start,
        "load_end": _load(),
        "start_slots": max(2, os.cpu_count() or 1),
    }
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    section = render_section(results)
    write_section(args.markdown, section)
    print(section)
    met = all(r["met"] for r in runs[0]["report"]["ratios"].values())
    return 0 if met or args.quick else 1


if __name__ == "__main__":
    raise SystemExit(main())
