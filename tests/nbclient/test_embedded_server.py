"""With no URL configured, the kernel starts its own local server and takes it down with it."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from nbkit import KernelSession, assert_all_gone, kernel_env, run_notebook

#: A local cell listing the kernel's descendants: the embedded server and its kernels.
LIST_CHILDREN = (
    "import json, psutil\n"
    "print(json.dumps([[p.pid, p.create_time(), ' '.join(p.cmdline())]\n"
    "                  for p in psutil.Process().children(recursive=True)]))"
)


def _is_server(cmdline: str) -> bool:
    return "sandbox_magic serve" in cmdline


def _running(pid: int, created: float) -> bool:
    """Whether that process still runs (a zombie waiting for its reaper has ended)."""
    try:
        process = psutil.Process(pid)
        return process.create_time() == created and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_embedded_server_serves_the_notebook_and_leaves_with_the_kernel(tmp_path: Path) -> None:
    env = kernel_env(tmp_path)
    cells = [
        "%load_ext sandbox_magic",
        "%%sandbox --out r\nimport os\nprint('remote pid', os.getpid())\n'embedded ok'",
        LIST_CHILDREN,
        "print(r.id)",
    ]
    executed = run_notebook(tmp_path, cells, env)

    (result,) = [o for o in executed.outputs(1) if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "'embedded ok'"
    # The note is its own output, or the first line of the status line's output.
    notices = [
        b["text/plain"].split("\n")[0]
        for b in executed.bundles(1)
        if b.get("text/plain", "").startswith("Started the embedded local sandbox server")
    ]
    assert len(notices) == 1
    assert "http://127.0.0.1:" in notices[0]

    children = json.loads(executed.stdout(2))
    servers = [c for c in children if _is_server(c[2])]
    assert len(servers) == 1, children
    assert len(children) >= 2, "the embedded server had no kernel"
    state_root = tmp_path / "jupyter-data" / "sandbox_magic" / "embedded"
    assert str(state_root) in servers[0][2]

    # nbclient has shut the kernel down: nothing it started may remain.
    assert_all_gone(str(tmp_path))
    for pid, created, _ in children:
        assert not _running(pid, created), f"process {pid} outlived the notebook kernel: {children}"

    # A new kernel (a restart) finds the run in the journal and renders it again.
    run_id = executed.stdout(3).strip()
    again = run_notebook(
        tmp_path,
        ["%load_ext sandbox_magic", "%sandbox runs --local", f"%sandbox attach {run_id}"],
        env,
        name="after-restart.ipynb",
    )
    listing = "".join(b["text/plain"] for b in again.bundles(1))
    assert run_id in listing
    assert "import os" in listing
    assert "remote pid" in again.stdout(2)
    (result,) = [o for o in again.outputs(2) if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "'embedded ok'"
    assert_all_gone(str(tmp_path))


def test_killed_kernel_takes_the_embedded_server_and_its_kernels_along(
    tmp_path: Path, kernel_factory: Callable[..., KernelSession]
) -> None:
    kernel = kernel_factory(kernel_env(tmp_path))
    kernel.execute("%load_ext sandbox_magic")
    reply = kernel.execute("%%sandbox\n'up'")
    assert reply.result == "'up'", reply.text()
    descendants = psutil.Process(kernel.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in descendants]
    assert any(_is_server(c) for c in commands), commands
    assert len(descendants) >= 2, commands

    os.kill(kernel.pid, signal.SIGKILL)
    _, alive = psutil.wait_procs(descendants, timeout=30)
    assert not alive, f"left running after the kernel was killed: {alive}"
    assert_all_gone(str(tmp_path))


def test_interrupt_cancels_the_run_without_stopping_the_embedded_server(
    tmp_path: Path, kernel_factory: Callable[..., KernelSession]
) -> None:
    kernel = kernel_factory(kernel_env(tmp_path))
    kernel.execute("%load_ext sandbox_magic")
    assert kernel.execute("%%sandbox\nvalue = 20").status == "ok"
    msg_id = kernel.send(
        "%%sandbox\nimport time\nfor i in range(600):\n"
        "    print('progress', i, flush=True)\n    time.sleep(0.1)"
    )

    def progress(message: dict[str, Any]) -> bool:
        return message["msg_type"] == "stream" and "progress" in message["content"]["text"]

    assert kernel.collect(msg_id, timeout=90, until=progress) is None
    kernel.manager.interrupt_kernel()
    reply = kernel.collect(msg_id, timeout=60)
    assert reply is not None
    assert "cancelled" in reply.error, reply.text()
    after = kernel.execute("%%sandbox\nvalue * 2 + 2")
    assert after.result == "42", after.text()
