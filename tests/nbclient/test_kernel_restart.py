"""After a kernel restart, the local journal still knows the runs and can show them again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbkit import KernelSession, remote_env


def test_restarted_kernel_lists_and_renders_an_earlier_run(
    live_server: Any, tmp_path: Path, kernel_factory: Callable[..., KernelSession]
) -> None:
    kernel = kernel_factory(remote_env(tmp_path, live_server))
    kernel.execute("%load_ext sandbox_magic")
    first = kernel.execute("%%sandbox --out r\nprint('before the restart')\n'kept value'")
    assert first.result == "'kept value'", first.text()
    run_id = kernel.execute("print(r.id)").stream().strip()

    kernel.manager.restart_kernel(now=False)
    kernel.client.wait_for_ready(timeout=60)
    assert kernel.execute("'r' in globals()").result == "False"  # a fresh kernel

    kernel.execute("%load_ext sandbox_magic")
    listing = kernel.execute("%sandbox runs --local")
    assert run_id in listing.text()
    assert "print('before the restart')" in listing.text()
    assert live_server.token not in listing.text()
    again = kernel.execute(f"%sandbox attach {run_id}")
    assert again.status == "ok", again.text()
    assert again.stream() == "before the restart\n"
    assert again.result == "'kept value'"
