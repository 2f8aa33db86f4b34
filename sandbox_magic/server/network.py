"""Outbound network for a confined kernel: slirp4netns on its network namespace.

Every confined kernel starts in a network namespace of its own with nothing but its own
loopback. A sandbox created with ``internet_access: true`` gets, for each of its
kernels, a user-mode network stack (slirp4netns) attached to that namespace: a
``tap0`` interface at 10.0.2.100 with a default route and a DNS forwarder at
10.0.2.3. ``--disable-host-loopback`` keeps the host's loopback (the server itself,
other kernels, the teacher's services) out of reach.

slirp4netns lives as long as the kernel process: it is stopped with the kernel, and
exits by itself when the server dies (the server holds the other end of its
``--exit-fd``).
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import tempfile
import time
from typing import IO, Final

__all__ = ["DNS_ADDRESS", "NetworkUnavailable", "SandboxNetwork", "resolv_conf"]

#: slirp4netns's built-in DNS forwarder, as the confined code sees it.
DNS_ADDRESS: Final = "10.0.2.3"
_READY_TIMEOUT: Final = 10.0
_MTU: Final = 65520


class NetworkUnavailable(RuntimeError):
    """slirp4netns could not give a kernel its network."""


def resolv_conf() -> str:
    """The ``/etc/resolv.conf`` a confined kernel sees (useful only with a network)."""
    return f"nameserver {DNS_ADDRESS}\n"


class SandboxNetwork:
    """One kernel's network: a running slirp4netns attached to the kernel's namespace."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        exit_fd: int,
        log: IO[bytes],
    ) -> None:
        self._process = process
        self._exit_fd: int | None = exit_fd
        self._log = log  # its messages: read when it fails to start

    @classmethod
    def attach(cls, slirp4netns: str, pid: int) -> SandboxNetwork:
        """Give the network namespace of process ``pid`` a way out (blocking, bounded)."""
        exit_read, exit_write = os.pipe()
        ready_read, ready_write = os.pipe()
        command = [
            slirp4netns,
            "--configure",
            f"--mtu={_MTU}",
            "--disable-host-loopback",
            f"--exit-fd={exit_read}",
            f"--ready-fd={ready_write}",
            str(pid),
            "tap0",
        ]
        log = tempfile.TemporaryFile(prefix="sbm-slirp-")  # noqa: SIM115 (kept open)
        try:
            process = subprocess.Popen(
                command,
                pass_fds=(exit_read, ready_write),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                start_new_session=True,
            )
        except OSError as error:
            for fd in (exit_read, exit_write, ready_read, ready_write):
                os.close(fd)
            log.close()
            raise NetworkUnavailable(f"slirp4netns could not be started: {error}") from error
        os.close(exit_read)
        os.close(ready_write)
        network = cls(process, exit_write, log)
        try:
            network._wait_ready(ready_read)
        except BaseException:
            network.close()
            raise
        finally:
            os.close(ready_read)
        return network

    def _wait_ready(self, ready_fd: int) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([ready_fd], [], [], remaining)
            if readable:
                if os.read(ready_fd, 1) == b"1":
                    return
                break  # closed without the ready byte: slirp4netns gave up
        self._process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=5)
        self._log.seek(0)
        detail = self._log.read().decode(errors="replace").strip().splitlines()
        raise NetworkUnavailable(
            "slirp4netns did not set up the sandbox's network"
            + (f": {detail[-1]}" if detail else f" within {_READY_TIMEOUT:.0f} s")
        )

    @property
    def running(self) -> bool:
        return self._process.poll() is None

    def close(self) -> None:
        """Take the network away (slirp4netns exits once its exit fd closes)."""
        if self._exit_fd is not None:
            os.close(self._exit_fd)
            self._exit_fd = None
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=2)
        self._log.close()
