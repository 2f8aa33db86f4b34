"""The cgroup tree's own rules, on plain folders standing for cgroup v1 hierarchies.

What the kernel does with the files (limits, moves, accounting) is covered by the
confined servers' tests; these check what this server decides: where the idle tree
may go, which trees of dead servers it removes, and how it adds up CPU time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox_magic.server import cgroups
from sandbox_magic.server.cgroups import CgroupTree, SandboxCgroup

GONE_PID = "999999999"  # above any pid_max: no such process


def _tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: dict[str, str]) -> CgroupTree:
    """`CgroupTree.create` as root, with each controller mounted at ``tmp_path / layout[c]``."""
    mounts = {name: tmp_path / folder for name, folder in layout.items()}
    for mount in mounts.values():
        mount.mkdir(exist_ok=True)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(cgroups, "_mounts", lambda: mounts)
    monkeypatch.setattr(cgroups, "_own_paths", lambda: dict.fromkeys(layout, "/"))
    tree = CgroupTree.create()
    assert tree is not None
    return tree


def test_a_cpu_hierarchy_of_its_own_gets_an_idle_tree_with_a_twin_per_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _tree(tmp_path, monkeypatch, {"memory": "m", "pids": "p", "cpu": "c", "cpuacct": "c"})
    assert tree.idle_cpu_root == tmp_path / "c" / f"sandbox-magic-idle-{os.getpid()}"
    assert (tree.idle_cpu_root / "cpu.idle").read_text() == "1"
    sandbox = tree.sandbox("sb_1")
    assert sandbox.idle_cpu == tree.idle_cpu_root / "sb_1"
    assert sandbox.idle_cpu.is_dir()


def test_no_idle_tree_where_a_move_would_leave_the_memory_or_process_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = _tree(tmp_path, monkeypatch, {"memory": "all", "pids": "p", "cpu": "all"})
    assert tree.idle_cpu_root is None
    assert tree.sandbox("sb_1").idle_cpu is None
    assert not list((tmp_path / "all").glob("sandbox-magic-idle-*"))


def test_trees_of_servers_that_are_gone_are_removed_both_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cpu = tmp_path / "c"
    for name in (f"sandbox-magic-{GONE_PID}", f"sandbox-magic-idle-{GONE_PID}"):
        (cpu / name / "sb_old").mkdir(parents=True)
    living = cpu / f"sandbox-magic-idle-{os.getppid()}"  # a server still running
    living.mkdir()
    _tree(tmp_path, monkeypatch, {"memory": "m", "pids": "p", "cpu": "c"})
    left = sorted(path.name for path in cpu.iterdir() if path.is_dir())
    assert left == sorted(
        [living.name, f"sandbox-magic-{os.getpid()}", f"sandbox-magic-idle-{os.getpid()}"]
    )


def _usage_file(directory: Path, nanoseconds: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpuacct.usage").write_text(f"{nanoseconds}\n")
    return directory


def test_cpu_time_counts_the_twin_where_cpu_and_cpuacct_are_one_hierarchy(
    tmp_path: Path,
) -> None:
    cpu = _usage_file(tmp_path / "cpu" / "sb", 2_000_000_000)
    twin = _usage_file(tmp_path / "cpu" / "idle" / "sb", 500_000_000)
    memory = tmp_path / "memory" / "sb"
    memory.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text("1048576\n")
    joint = SandboxCgroup({"memory": memory, "cpu": cpu, "cpuacct": cpu}, twin)
    assert joint.usage() == (2.5, 1048576.0)
    # a separate cpuacct hierarchy never sees the move: its own count is the whole
    apart = _usage_file(tmp_path / "cpuacct" / "sb", 3_000_000_000)
    separate = SandboxCgroup({"memory": memory, "cpu": cpu, "cpuacct": apart}, twin)
    assert separate.usage() == (3.0, 1048576.0)
