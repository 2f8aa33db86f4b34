"""Start and stop the local sandbox server that ``%%sandbox`` uses by default.

With no URL configured, the first remote cell starts ``sandbox-magic serve`` as a
child process on a free loopback port with a fresh token. The child is tied to the
kernel: it is stopped when the extension unloads or the interpreter exits, and on
Linux it also receives SIGTERM if the kernel dies abruptly, so no server or kernel
process outlives the notebook.

Its state directory is kept between kernel sessions (under Jupyter's data directory),
so finished runs can be rendered again after a restart. Each running embedded server
holds a lock on its slot; a second notebook kernel takes the next free slot.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from sandbox_magic.client import SandboxError

__all__ = ["EmbeddedServer", "EmbeddedServerError", "default_state_root"]

_READY = re.compile(r"sandbox-magic server ready at (http://\S+)")
_MAX_SLOTS = 64


class EmbeddedServerError(SandboxError):
    """The embedded local server could not be started."""


def default_state_root() -> Path:
    """Where embedded servers keep their state: Jupyter's data directory."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "sandbox_magic" / "embedded"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to send SIGTERM to this child when its parent exits."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class EmbeddedServer:
    """A ``sandbox-magic serve`` child process owned by this kernel."""

    state_root: Path = field(default_factory=default_state_root)
    startup_timeout: float = 60.0
    url: str | None = field(default=None, init=False)
    state_dir: Path | None = field(default=None, init=False)
    _token: str | None = field(default=None, init=False, repr=False)
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock_file: IO[str] | None = field(default=None, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)

    @property
    def token(self) -> str:
        """The bearer token of the running server."""
        if self._token is None:
            raise EmbeddedServerError("The embedded server is not running.")
        return self._token

    @property
    def pid(self) -> int | None:
        """Process id of the server, while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, state_dir: Path | None = None) -> str:
        """Start the server (a no-op when running) and return its URL."""
        if self.running and self.url is not None:
            return self.url
        self.state_dir = self._claim(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._token = secrets.token_urlsafe(32)
        self._log_path = self.state_dir / "server.log"
        env = dict(os.environ)
        env["SANDBOX_MAGIC_TOKEN"] = self._token  # not on the command line, where ps shows it
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            sys.executable, "-m", "sandbox_magic", "serve",
            "--host", "127.0.0.1", "--port", "0", "--state-dir", str(self.state_dir),
        ]  # fmt: skip
        with self._log_path.open("wb") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                preexec_fn=_die_with_parent,
                # Its own process group: the kernel's interrupt (SIGINT to the kernel's
                # group) and ipykernel's shutdown sweep of that group must not reach
                # it. It is stopped by `stop` (at exit too) or by PDEATHSIG.
                start_new_session=True,
            )
        self.url = self._wait_until_ready()
        return self.url

    def _claim(self, requested: Path | None) -> Path:
        """Lock a state directory for this server: the one requested, or a free slot.

        One server per directory: two would share its log (whose ready line names the
        URL) and its database.
        """
        if requested is not None:
            if self._lock(requested):
                return requested
            raise EmbeddedServerError(
                f"Another embedded server (in another notebook kernel) is using {requested}; "
                "stop that kernel first, or use the URL of the server it started."
            )
        self.state_root.mkdir(parents=True, exist_ok=True)
        for slot in range(_MAX_SLOTS):
            if self._lock(self.state_root / f"slot-{slot}"):
                return self.state_root / f"slot-{slot}"
        raise EmbeddedServerError(
            f"All {_MAX_SLOTS} embedded server slots under {self.state_root} are in use."
        )

    def _lock(self, path: Path) -> bool:
        path.mkdir(parents=True, exist_ok=True)
        lock = (path / ".lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return False
        self._lock_file = lock
        return True

    def _wait_until_ready(self) -> str:
        assert self._process is not None
        assert self._log_path is not None
        deadline = time.monotonic() + self.startup_timeout
        delay = 0.01
        while time.monotonic() < deadline:
            log = self._log_path.read_text(errors="replace")
            if match := _READY.search(log):
                return match.group(1)
            if self._process.poll() is not None:
                self._release()
                raise EmbeddedServerError(
                    "The embedded sandbox server exited while starting "
                    f"(exit code {self._process.returncode}). Its last output:\n" + _tail(log)
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
        self.stop()
        raise EmbeddedServerError(
            f"The embedded sandbox server did not become ready within "
            f"{self.startup_timeout:.0f} s; its log is {self._log_path}."
        )

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server and its kernels; kill it if it does not stop in time."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.url = None
        self._token = None
        self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def __repr__(self) -> str:
        return f"EmbeddedServer(url={self.url!r}, pid={self.pid!r})"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
