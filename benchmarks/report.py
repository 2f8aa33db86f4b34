"""The targets of issue 7, checked against the figures, and BENCHMARKS.md rendered."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["TARGETS", "Target", "evaluate_targets", "render_markdown"]


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    limit: float
    unit: str
    higher_is_better: bool
    measure: Callable[[dict[str, Any]], float | None]


def _get(report: dict[str, Any], *path: str) -> Any:
    node: Any = report.get("cases", {})
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _median(report: dict[str, Any], *path: str) -> float | None:
    node = _get(report, *path)
    return node.get("median") if isinstance(node, dict) else None


TARGETS: tuple[Target, ...] = (
    Target(
        "trivial_overhead",
        "Trivial cell: `%%sandbox` minus the floor, median",
        25.0,
        "ms",
        False,
        lambda r: _get(r, "trivial", "overhead_magic_minus_floor_ms"),
    ),
    Target(
        "speedup_vs_wait_for_run",
        "Trivial cell: SDK `wait_for_run` time / `%%sandbox` time, medians",
        5.0,
        "x",
        True,
        lambda r: _get(r, "trivial", "speedup_vs_wait_for_run"),
    ),
    Target(
        "poll_requests_20s",
        "20 s run: requests of `%%sandbox` / requests of a fixed 1 s poll",
        1.3,
        "x",
        False,
        lambda r: _get(r, "polling", "20s", "request_ratio"),
    ),
    Target(
        "bridge_combined",
        "Bridge: render 10 MB PNG + 100k lines + 500 results, median",
        150.0,
        "ms",
        False,
        lambda r: _median(r, "bridge", "combined", "render_ms"),
    ),
    Target(
        "warm_new_context",
        "Local server: first result of a new context (warm kernel), median",
        150.0,
        "ms",
        False,
        lambda r: _median(r, "local_server", "warm_new_context", "first_result_ms"),
    ),
    Target(
        "fresh_notebook",
        "First cell of a fresh notebook incl. server start, median",
        3000.0,
        "ms",
        False,
        lambda r: _median(r, "local_server", "fresh_notebook", "load_ext_and_first_cell_ms"),
    ),
    Target(
        "load_ext",
        "`%load_ext sandbox_magic` in a fresh IPython, median",
        150.0,
        "ms",
        False,
        lambda r: _median(r, "extension_load", "load_ext_ms"),
    ),
)


def evaluate_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (None: not measured)."""
    rows = []
    for target in TARGETS:
        value = target.measure(report)
        met = None
        if value is not None:
            met = value >= target.limit if target.higher_is_better else value <= target.limit
        row = asdict(target)
        del row["measure"]
        row.update(measured=value, met=met)
        rows.append(row)
    return rows


# -- markdown ---------------------------------------------------------------------------


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:,.{digits}f}"


def _stat_row(label: str, stats: dict[str, Any] | None, digits: int = 1) -> str:
    stats = stats or {}
    return (
        f"| {label} | {_num(stats.get('median'), digits)} | {_num(stats.get('p95'), digits)} "
        f"| {_num(stats.get('min'), digits)} | {_num(stats.get('max'), digits)} "
        f"| {_num(stats.get('n'))} |"
    )


_STAT_HEAD = "| | median | p95 | min | max | n |\n|---|---:|---:|---:|---:|---:|"


def _machine(report: dict[str, Any]) -> list[str]:
    m = report["machine"]
    return [
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        f"| date (UTC) | {m['date']} |",
        f"| CPU | {m['cpu_model']} |",
        f"| cores | {m['logical_cores']} logical, {m['physical_cores']} physical |",
        f"| memory | {m['memory_gb']} GB |",
        f"| OS | {m['os']} |",
        f"| Python | {m['python']} ({m['python_implementation']}) |",
        f"| sandbox_magic | {m['sandbox_magic']} (commit {m['git_commit'] or 'unknown'}) |",
        f"| load average at start / end | {report.get('load_average_at_start')} / "
        f"{report.get('load_average_at_end')} |",
        f"| whole run | {_num(report.get('total_seconds'), 0)} s |",
        "",
    ]


def _targets(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Targets",
        "",
        "| target | limit | measured | met |",
        "|---|---:|---:|---|",
    ]
    for row in report["targets"]:
        sign = ">=" if row["higher_is_better"] else "<="
        met = {True: "**met**", False: "**missed**", None: "not measured"}[row["met"]]
        digits = 2 if row["unit"] == "x" else 1
        lines.append(
            f"| {row['label']} | {sign} {_num(row['limit'], digits)} {row['unit']} "
            f"| {_num(row['measured'], digits)} {row['unit']} | {met} |"
        )
    return [*lines, ""]


def _trivial(report: dict[str, Any]) -> list[str]:
    t = _get(report, "trivial")
    if not t:
        return []
    rows = [
        ("`%%sandbox` (status view on, the default)", "magic"),
        ("`%%sandbox --quiet`", "magic_quiet"),
        ("floor: raw HTTP submit + poll every 2 ms", "floor"),
        ("SDK `create_run` + `wait_for_run` (defaults)", "sdk_wait_for_run"),
        ("SDK streaming `run_code`", "sdk_run_code"),
        (
            "server-side duration (`completed_at - created_at`), floor runs",
            "server_duration_floor_runs",
        ),
        ("server-side duration, `%%sandbox` runs", "server_duration_magic_runs"),
        ("for scale: a local IPython cell `1+1`", "local_ipython_cell"),
    ]
    return [
        "## 1. Trivial cell (`1+1`), wall time in ms",
        "",
        _STAT_HEAD,
        *(_stat_row(label, t.get(key)) for label, key in rows),
        "",
        f"Overhead of `%%sandbox` over the floor (difference of medians): "
        f"**{_num(t.get('overhead_magic_minus_floor_ms'))} ms** "
        f"(`--quiet`: {_num(t.get('overhead_quiet_minus_floor_ms'))} ms). "
        f"`%%sandbox` is **{_num(t.get('speedup_vs_wait_for_run'))}x** faster than "
        "`create_run` + `wait_for_run`.",
        "",
    ]


def _polling(report: dict[str, Any]) -> list[str]:
    p = _get(report, "polling")
    if not p:
        return []
    lines = [
        "## 2. Poll load and latency",
        "",
        "Requests counted at a proxy in front of the server, per run (the submit included). "
        "Latency: from the server's `completed_at` to the caller having the final result "
        "(for `%%sandbox`: `run_cell` returned, outputs rendered). Medians.",
        "",
        "| run sleeps | requests `%%sandbox` | requests fixed 1 s poll | ratio "
        "| latency `%%sandbox` ms | latency fixed 1 s poll ms | runs each |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in p.items():
        magic, fixed = entry["magic"], entry["fixed_1s_poll"]
        lines.append(
            f"| {name} | {_num(magic['requests']['median'])} | "
            f"{_num(fixed['requests']['median'])} | {_num(entry['request_ratio'], 2)} | "
            f"{_num(magic['latency_ms']['median'])} | {_num(fixed['latency_ms']['median'])} | "
            f"{magic['requests']['n']} |"
        )
    return [*lines, ""]


def _bridge(report: dict[str, Any]) -> list[str]:
    b = _get(report, "bridge")
    if not b:
        return []
    lines = [
        "## 3. Bridge: rendering a finished run in IPython",
        "",
        "| run | render median ms | p95 ms | peak memory MB | outputs | stdout chars shown |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for entry in b.values():
        render = entry["render_ms"]
        lines.append(
            f"| {entry['description']} | {_num(render.get('median'))} | "
            f"{_num(render.get('p95'))} | {_num(entry['peak_mb'])} | "
            f"{entry['display_outputs']} | {entry['stdout_chars_shown']:,} |"
        )
    return [*lines, ""]


def _local_server(report: dict[str, Any]) -> list[str]:
    s = _get(report, "local_server")
    if not s:
        return []
    fresh = s.get("fresh_notebook", {})
    lines = [
        "## 4. Local server",
        "",
        _STAT_HEAD,
        _stat_row("new context, warm kernel: create + first result (ms)",
                  s.get("warm_new_context", {}).get("first_result_ms")),
        _stat_row("… of which creating the context (ms)",
                  s.get("warm_new_context", {}).get("create_context_ms")),
        _stat_row("new context, cold kernel: create + first result (ms)",
                  s.get("cold_new_context", {}).get("first_result_ms")),
        _stat_row("… of which creating the context (ms)",
                  s.get("cold_new_context", {}).get("create_context_ms")),
        _stat_row("fresh notebook: `%load_ext` + first `%%sandbox` cell, embedded "
                  "server started (ms)", fresh.get("load_ext_and_first_cell_ms")),
        _stat_row("… the first cell alone (ms)", fresh.get("first_cell_ms")),
        _stat_row("… the whole process, Python and IPython start included (ms)",
                  fresh.get("process_ms")),
        _stat_row("first `%%sandbox` cell 3 s after the `%load_ext` cell (server "
                  "started meanwhile) (ms)",
                  s.get("fresh_notebook_after_pause", {}).get("first_cell_ms")),
        "",
    ]  # fmt: skip
    throughput = s.get("throughput", {})
    if throughput:
        lines += [
            "| sustained trivial runs | runs/s | run latency median ms | p95 ms |",
            "|---|---:|---:|---:|",
        ]
        for entry in throughput.values():
            latency = entry["run_latency_ms"]
            lines.append(
                f"| {entry['contexts']} context(s), each submitting back to back "
                f"| {_num(entry['runs_per_second'])} | {_num(latency.get('median'))} "
                f"| {_num(latency.get('p95'))} |"
            )
        lines.append("")
    memory = s.get("memory")
    if memory:
        lines += [
            f"Memory per context ({memory['contexts']} contexts, one kernel each): "
            f"USS median {_num(memory['kernel_uss_mb']['median'])} MB, "
            f"RSS median {_num(memory['kernel_rss_mb']['median'])} MB; "
            f"the server process itself: RSS {_num(memory['server_rss_mb'])} MB.",
            "",
        ]
    return lines


def _extension(report: dict[str, Any]) -> list[str]:
    e = _get(report, "extension_load")
    if not e:
        return []
    heavy = ", ".join(e.get("heavy_modules_imported") or []) or "none"
    return [
        "## 5. `%load_ext sandbox_magic` in a fresh IPython",
        "",
        _STAT_HEAD,
        _stat_row("`%load_ext sandbox_magic` (ms)", e.get("load_ext_ms")),
        "",
        f"Modules it imports: {e.get('modules_imported')}; of the heavy ones "
        f"(httpx, httpcore, anyio, ipywidgets): {heavy}.",
        "",
    ]


def _transfer(report: dict[str, Any]) -> list[str]:
    t = _get(report, "transfer")
    if not t or "output" not in t:
        return []
    return [
        "## Transfer (push/pull of a DataFrame, `benchmarks/transfer_throughput.py`)",
        "",
        "```",
        *t["output"],
        "```",
        "",
    ]


_HOW = """\
# Benchmarks

What a `%%sandbox` cell costs beyond the remote work, measured side by side with the
floor (raw HTTP, polling every 2 ms) and with the service's own SDK
(`nullspace-sdk` 0.1.9), all against the project's local server on this machine.

Run it from the repository root with the project's Python:

```
python -m benchmarks            # everything, a few minutes; rewrites this file
python -m benchmarks --quick    # a tiny configuration (what the smoke test runs)
```

It starts `sandbox-magic serve --port 0` with a fresh token and state directory (and
a second one with no warm kernels for the cold-start figures), drives `%%sandbox`
through a real in-process IPython shell, and writes this file and
`benchmarks/results.json`. Medians and p95 are over the runs of this one run; every
figure below comes from it.
"""


def _missed(report: dict[str, Any]) -> list[str]:
    from benchmarks.notes import MISSED

    missed = [row for row in report["targets"] if row["met"] is False]
    if not missed:
        return []
    lines = ["## Missed targets in this run", ""]
    for row in missed:
        lines += [f"- **{row['label']}**: {MISSED.get(row['key'], '')}".rstrip(": "), ""]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    from benchmarks.notes import CHANGES, READING

    lines = [_HOW, *_machine(report), *_targets(report), *_missed(report)]
    if report.get("errors"):
        lines += ["**Cases that failed in this run:** " + ", ".join(report["errors"]), ""]
    lines += [
        *_trivial(report),
        *_polling(report),
        *_bridge(report),
        *_local_server(report),
        *_extension(report),
        *_transfer(report),
        CHANGES,
        READING,
        *_classroom(),
    ]
    return "\n".join(lines).rstrip() + "\n"


def _classroom() -> list[str]:
    """The section `benchmarks.classroom` wrote last, kept when the main run rewrites the file."""
    from benchmarks.classroom import JSON_PATH, render_section

    if not JSON_PATH.exists():
        return []
    return ["", render_section(json.loads(JSON_PATH.read_text())), ""]
