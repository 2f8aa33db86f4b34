"""Fairness: kernel starts served one name at a time; CPU loops demoted, sleepers not."""

from __future__ import annotations

import ast
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from testkit import idle_tree_of

from sandbox_magic.server.classroom import fairness
from sandbox_magic.server.classroom.fairness import (
    DEMOTE_AFTER,
    KEEP_DEMOTED,
    CpuDemoter,
    FairGate,
)
from sandbox_magic.server.classroom.usage import cpu_seconds


@pytest.mark.anyio
async def test_the_gate_serves_names_in_turn() -> None:
    gate = FairGate(1)
    order: list[str] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with gate.slot("first"):
            await release.wait()

    async def take(label: str) -> None:
        async with gate.slot(label.split("-")[0]):
            order.append(label)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    # one name queues three starts before the others queue one each
    labels = ["ann-1", "ann-2", "ann-3", "ben-1", "cat-1"]
    waiters = []
    for label in labels:
        waiters.append(asyncio.create_task(take(label)))
        await asyncio.sleep(0)
    assert gate.waiting == 5
    release.set()
    await asyncio.wait_for(asyncio.gather(holder, *waiters), 5)
    assert order == ["ann-1", "ben-1", "cat-1", "ann-2", "ann-3"]


@pytest.mark.anyio
async def test_a_waiter_that_gives_up_does_not_keep_its_place() -> None:
    gate = FairGate(1)
    entered = asyncio.Event()

    async def take() -> None:
        async with gate.slot("x"):
            entered.set()

    async with gate.slot("holder"):
        quitter = asyncio.create_task(take())
        await asyncio.sleep(0)
        quitter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await quitter
        assert gate.waiting == 0
    stayer = asyncio.create_task(take())
    await asyncio.wait_for(entered.wait(), 5)
    await stayer


def _host_pid(cmdline: str) -> int:
    """The pid, as this host sees it, of the kernel whose command line is ``cmdline``.

    A kernel confined by bwrap lives in its own pid namespace: its ``os.getpid()`` is
    not a pid here. Its command line (which names its own connection file) is unique.
    """
    wanted = cmdline.encode("latin-1")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted:
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("the kernel's process was not found")


def _priority(sandbox_id: str, pid: int) -> int:
    """The kernel's priority as a nice level: its sandbox's ``cpu.shares`` where the
    sandbox has a cpu cgroup (the scheduler weighs cgroups, not nice, between them),
    else the kernel process's own nice."""
    shares = list(Path("/sys/fs/cgroup/cpu").glob(f"**/sandbox-magic-*/{sandbox_id}/cpu.shares"))
    if shares:
        weight = int(shares[0].read_text())
        return {1024: 0, 29: 16, 23: 17, 18: 18, 15: 19}.get(weight, -1)
    nice = os.getpriority(os.PRIO_PROCESS, pid)
    # Where the scheduler groups by session, the kernel's own autogroup (never ours)
    # must carry the level too, or the nice weighs only inside the kernel's session.
    group, ours = _autogroup(pid), _autogroup(os.getpid())
    if group is not None and ours is not None and group[0] != ours[0] and group[1] != nice:
        return -1  # not (yet) the same level: matches no level a test waits for
    return nice


def _in_idle_tree(sandbox_id: str, pid: int) -> bool | None:
    """Whether the kernel is in its sandbox's twin in the idle ``cpu`` tree (None where
    its server has no such tree: no cpu cgroups, or no ``cpu.idle``)."""
    idle_tree = idle_tree_of(sandbox_id)
    if idle_tree is None:
        return None
    twin = idle_tree / sandbox_id
    assert twin.is_dir(), f"the idle tree has no twin of sandbox {sandbox_id}"
    return str(pid) in (twin / "cgroup.procs").read_text().split()


def _policies(pid: int) -> set[int]:
    """The scheduling policies of the kernel process's threads."""
    return {os.sched_getscheduler(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")}


def _autogroup(pid: int) -> tuple[str, int] | None:
    """``(name, nice)`` of the autogroup ``pid`` is scheduled in; None when off."""
    try:
        name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().split()
    except (OSError, ValueError):
        return None
    return name, int(nice)


def test_a_cpu_loop_is_demoted_and_restored_a_sleeper_is_not(make_student, wait_until) -> None:
    looper, sleeper = make_student(prefix="loop"), make_student(prefix="sleep")
    spaces = []
    for student in (looper, sleeper):
        sandbox_id = student.sandbox()
        context_id = student.context(sandbox_id)
        cmdline_run = student.run(
            sandbox_id, context_id, "open('/proc/self/cmdline', 'rb').read().decode('latin-1')"
        )
        pid = _host_pid(ast.literal_eval(cmdline_run["execution"]["results"][0]["text"]))
        spaces.append((student, sandbox_id, context_id, pid))
    (_, loop_sb, loop_ctx, loop_pid), (_, sleep_sb, sleep_ctx, sleep_pid) = spaces

    loop = looper.submit(loop_sb, loop_ctx, "while True:\n    pass")
    nap = sleeper.submit(sleep_sb, sleep_ctx, "import time; time.sleep(8)")
    wait_until(
        lambda: _priority(loop_sb, loop_pid) == 16,
        timeout=20,
        what="the loop's kernel to be demoted",
    )
    assert _priority(sleep_sb, sleep_pid) == 0
    # Its threads also run only on time nobody else wants (SCHED_IDLE); the sleeper's not.
    wait_until(
        lambda: _policies(loop_pid) == {os.SCHED_IDLE},
        timeout=5,
        what="the loop's threads to get the idle policy",
    )
    assert _policies(sleep_pid) == {os.SCHED_OTHER}
    # Where the machine has an idle cpu tree, the loop's sandbox runs in it; the sleeper's not.
    idle_tree = _in_idle_tree(loop_sb, loop_pid)
    assert idle_tree in (True, None)
    assert _in_idle_tree(sleep_sb, sleep_pid) in (False, None)
    # the other student's cells still go through while the loop runs
    quick = make_student(prefix="quick")
    quick_sb = quick.sandbox()
    quick_ctx = quick.context(quick_sb)
    for _ in range(3):
        assert quick.run(quick_sb, quick_ctx, "1 + 1", timeout=10)["status"] == "succeeded"

    looper.http.post(f"/v1/sandboxes/{loop_sb}/code/runs/{loop['id']}/cancel")
    ended = time.monotonic()
    assert looper.wait(loop_sb, loop["id"])["status"] == "cancelled"
    # For a few seconds after its loop the kernel stays behind the others: a loop run
    # again at once gets no full-priority head start.
    assert _priority(loop_sb, loop_pid) == 16
    # raising a priority back needs CAP_SYS_NICE; without it the kernel stays demoted
    restored = 0 if os.geteuid() == 0 else 16
    wait_until(
        lambda: _priority(loop_sb, loop_pid) == restored,
        timeout=KEEP_DEMOTED + 10,
        what="the kernel's priority to come back",
    )
    if restored == 0:
        assert time.monotonic() - ended >= KEEP_DEMOTED - 1
        wait_until(
            lambda: _policies(loop_pid) == {os.SCHED_OTHER},
            timeout=5,
            what="the kernel's threads to get the normal policy back",
        )
        assert _in_idle_tree(loop_sb, loop_pid) in (False, None)
    # the context keeps working, at normal priority
    assert looper.run(loop_sb, loop_ctx, "2 + 2")["status"] == "succeeded"
    sleeper.http.post(f"/v1/sandboxes/{sleep_sb}/code/runs/{nap['id']}/cancel")


def _busy_loop() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "while True:\n    pass"])


class _Context:
    def __init__(self, pid: int) -> None:
        self.kernel = SimpleNamespace(pid=pid)


def test_a_lone_users_loop_keeps_its_priority_until_someone_else_runs_something(
    wait_until,
) -> None:
    """One user (the embedded server) has nobody to be fair to: a long run is left alone.

    A real busy process stands for the kernel; the service is reduced to what the
    demoter reads (its runs and sandboxes).
    """
    loop = _busy_loop()
    try:
        mine = SimpleNamespace(contexts={"ctx": _Context(loop.pid)}, jail=None, last_active=0.0)
        run = SimpleNamespace(
            id="run_1", sandbox_id="sb_mine", context_id="ctx", status="running", started_at="t"
        )
        service = SimpleNamespace(runs={"run_1": run}, sandboxes={"sb_mine": mine})
        owners = {"sb_mine": "ada", "sb_other": "bo"}
        demoter = CpuDemoter(service, owners.__getitem__)  # type: ignore[arg-type]
        mine.last_active = time.monotonic()

        start = cpu_seconds(loop.pid) or 0.0

        def well_past_the_threshold() -> bool:  # looked at all along, as the server does
            demoter.check()
            return (cpu_seconds(loop.pid) or 0.0) - start > 4 * DEMOTE_AFTER

        wait_until(well_past_the_threshold, timeout=30, what="the loop to use CPU")
        demoter.check()
        assert os.getpriority(os.PRIO_PROCESS, loop.pid) == 0
        assert _policies(loop.pid) == {os.SCHED_OTHER}

        other = SimpleNamespace(contexts={}, jail=None, last_active=time.monotonic())
        service.sandboxes["sb_other"] = other  # bo just ran a cell
        demoter.check()
        assert os.getpriority(os.PRIO_PROCESS, loop.pid) == 16
        assert _policies(loop.pid) == {os.SCHED_IDLE}
    finally:
        loop.kill()
        loop.wait()


class _RecordingCgroup:
    """Stands for a sandbox's cgroups: keeps the weight and idle state it is given."""

    def __init__(self) -> None:
        self.directories = {"cpu": Path("/nonexistent")}
        self.weight = 1024
        self.idle = False

    def set_cpu_weight(self, shares: int) -> None:
        self.weight = shares

    def set_idle(self, idle: bool) -> None:
        self.idle = idle


def test_a_sandbox_stays_demoted_while_any_of_its_kernels_loops(wait_until, monkeypatch) -> None:
    """Two loops in one sandbox: the sandbox keeps the lower priority of those still
    demoted, and gets its own back only when the last one is restored."""
    monkeypatch.setattr(fairness, "KEEP_DEMOTED", 0.0)
    loops = [_busy_loop(), _busy_loop()]
    try:
        cgroup = _RecordingCgroup()
        box = SimpleNamespace(
            contexts={f"ctx{i}": _Context(loop.pid) for i, loop in enumerate(loops)},
            jail=SimpleNamespace(cgroup=cgroup),
            last_active=time.monotonic(),
        )
        runs = {
            f"run{i}": SimpleNamespace(
                id=f"run{i}",
                sandbox_id="sb_box",
                context_id=f"ctx{i}",
                status="running",
                started_at=f"t{i}",
            )
            for i in range(2)
        }
        other = SimpleNamespace(contexts={}, jail=None, last_active=time.monotonic())
        service = SimpleNamespace(runs=runs, sandboxes={"sb_box": box, "sb_other": other})
        owners = {"sb_box": "ada", "sb_other": "bo"}
        demoter = CpuDemoter(service, owners.__getitem__)  # type: ignore[arg-type]

        def both_demoted() -> bool:
            demoter.check()
            return cgroup.weight == fairness._weight(17)  # a second loop of one name: 17

        wait_until(both_demoted, timeout=30, what="both loops to be demoted")
        assert cgroup.idle
        runs["run1"].status = "succeeded"  # the loop at nice 17 ends
        demoter.check()
        assert (cgroup.weight, cgroup.idle) == (fairness._weight(16), True)
        runs["run0"].status = "succeeded"
        demoter.check()
        assert (cgroup.weight, cgroup.idle) == (1024, False)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
