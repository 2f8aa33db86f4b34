"""Helpers shared by the test folders: waiting with a deadline, and the loaded magics."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sandbox_magic.notebook.extension import loaded_magics
from sandbox_magic.notebook.magics import SandboxMagics
from sandbox_magic.session.sandbox_session import SandboxSession

__all__ = ["idle_tree_of", "magics_of", "session_of", "wait_until"]

_T = TypeVar("_T")


def wait_until(
    check: Callable[[], _T], *, timeout: float = 30.0, interval: float = 0.05, what: str = "it"
) -> _T:
    """Poll ``check`` until it returns something truthy (returned); fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def idle_tree_of(sandbox_id: str) -> Path | None:
    """The idle ``cpu`` tree of the server holding the sandbox (None where it has none:
    no cpu cgroups, or no ``cpu.idle``)."""
    for cpu in Path("/sys/fs/cgroup/cpu").glob(f"**/sandbox-magic-[0-9]*/{sandbox_id}"):
        server_pid = cpu.parent.name.rpartition("-")[2]
        tree = cpu.parent.with_name(f"sandbox-magic-idle-{server_pid}")
        return tree if tree.is_dir() else None
    return None


def magics_of(shell: Any) -> SandboxMagics:
    """The extension's magics in ``shell``; fails when the extension is not loaded."""
    magics = loaded_magics(shell)
    assert magics is not None, "the sandbox_magic extension is not loaded"
    return magics


def session_of(shell: Any) -> SandboxSession:
    """The session the shell's cells used; fails when no cell made one yet."""
    session = magics_of(shell).controller.active_session
    assert session is not None, "no %%sandbox cell has run in this shell"
    return session
