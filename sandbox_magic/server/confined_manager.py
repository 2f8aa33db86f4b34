"""A kernel manager that starts its kernel confined (see `confinement`).

It changes three things of jupyter_client's `AsyncKernelManager`: the command is
wrapped by `Confinement.wrap` (and a TCP-only kernel put behind `tcp_relay`), the
connection file is handed to the sandbox's uid, and interrupts go as messages (a signal
would reach bwrap, not the kernel).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

from sandbox_magic.server import languages, tcp_relay
from sandbox_magic.server.confinement import Confinement, Jail

__all__ = ["ConfinedKernelManager"]


class ConfinedKernelManager(AsyncKernelManager):
    """`AsyncKernelManager` for one kernel of one sandbox, under bubblewrap."""

    def confine(
        self,
        confinement: Confinement,
        jail: Jail,
        *,
        kernel_dir: Path,
        cwd: str,
        envs: dict[str, str],
    ) -> None:
        """Say where and how the kernel runs (``cwd`` as the kernel sees it): before
        ``start_kernel``, or to change what a restart gets."""
        self.confinement = confinement
        self.kernel_dir = kernel_dir
        self._confinement = confinement
        self._jail = jail
        self._kernel_dir = kernel_dir
        self._cwd = cwd
        self._envs = envs

    @property
    def kernel_spec(self) -> KernelSpec | None:
        spec = super().kernel_spec
        if spec is not None and spec.interrupt_mode != "message":
            spec.interrupt_mode = "message"
        return spec

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        argv: list[str] = super().format_kernel_cmd(extra_arguments)
        spec = self.kernel_spec
        spec_env = dict(spec.env) if spec is not None else {}
        extra: list[Path] = []
        if spec is not None and spec.resource_dir:
            extra.append(Path(spec.resource_dir))
        program = shutil.which(argv[0]) if argv else None
        if program and Path(program).resolve() != Path(sys.executable).resolve():
            extra.append(Path(program).resolve().parent.parent)
        if languages.tcp_only(self.kernel_name):
            relay = languages.source_program(tcp_relay.__file__)
            argv = [sys.executable, "-c", relay, self.connection_file, "--", *argv]
        reserve_mb, memory_env = languages.memory_settings(
            self.kernel_name, self._jail.limits.memory_mb
        )
        return self._confinement.wrap(
            argv,
            jail=self._jail,
            kernel_dir=self._kernel_dir,
            cwd=self._cwd,
            env=self._confinement.kernel_env({**spec_env, **memory_env}, self._envs),
            extra_ro=extra,
            reserve_mb=reserve_mb,
        )

    def write_connection_file(self, **kwargs: Any) -> None:
        super().write_connection_file(**kwargs)
        self._confinement.own_file(self._jail, Path(self.connection_file))
