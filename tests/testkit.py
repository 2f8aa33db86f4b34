"""Helpers shared by the test folders: waiting with a deadline, and the loaded magics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from sandbox_magic.notebook.extension import loaded_magics
from sandbox_magic.notebook.magics import SandboxMagics
from sandbox_magic.session.sandbox_session import SandboxSession

__all__ = ["magics_of", "session_of", "wait_until"]

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
