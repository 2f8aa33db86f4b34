"""A small Jupyter kernel for Java: a wrapper over the JDK's ``jshell``.

No Java kernel ships from a registry this project can use, and every JDK has
``jshell``; this wraps it as ``bash_kernel`` wraps bash. One ``jshell`` process
lives as long as the kernel, so declarations persist from one cell to the next.

Each cell is written to jshell's standard input, followed by a line printing a
random end marker; what jshell prints before the marker is the cell's output.
jshell reports a failed snippet on its own output, in lines starting with ``|``
(``|  Exception ...``, ``|  Error: ...``): those become the cell's error, named
after the exception (or ``CompilationError``). An interrupt ends the jshell
process and starts a fresh one (its declarations are lost); the cell says so.

Run it as ``python -m sandbox_magic.server.jshell_kernel -f CONNECTION_FILE``.
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import re
import secrets
import shutil
import subprocess
import threading
from typing import Any, Final

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

__all__ = ["JShellKernel", "find_jshell"]

#: jshell's own setup: no prompts, no feedback but errors.
_SETUP: Final = '/set mode sbm silent -quiet\n/set prompt sbm "" ""\n/set feedback sbm\n'
_EXCEPTION: Final = re.compile(r"^\|\s+Exception ([\w.$]+)(?::\s*(.*))?$")
_STARTUP_TIMEOUT: Final = 120.0


def find_jshell() -> str | None:
    """The ``jshell`` executable: ``$JAVA_HOME/bin/jshell``, else on ``PATH``."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "jshell"), os.X_OK):
        return os.path.join(home, "bin", "jshell")
    return shutil.which("jshell")


class _JShell:
    """One jshell process and a thread reading its output line by line."""

    def __init__(self, executable: str) -> None:
        self.process = subprocess.Popen(
            [executable, "-J-Djava.util.prefs.userRoot=.jshell-prefs", "--feedback", "silent"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()
        self.send(_SETUP)
        self.run_until_marker(lambda _name, _line: None, timeout=_STARTUP_TIMEOUT)

    def _read(self, name: str, stream: Any) -> None:
        for line in stream:
            self.lines.put((name, line))
        self.lines.put((name, None))

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text if text.endswith("\n") else text + "\n")
        self.process.stdin.flush()

    def run_until_marker(self, emit: Any, *, timeout: float | None = None) -> None:
        """Send the end marker; pass every line before it to ``emit(stream, line)``."""
        marker = f"\x01sbm-end-{secrets.token_hex(8)}"
        self.send(f'System.out.println("{marker}");')
        while True:
            name, line = self.lines.get(timeout=timeout)
            if line is None:
                raise EOFError("jshell exited")
            if name == "stdout" and line.rstrip("\n").endswith(marker):
                before = line.rstrip("\n")[: -len(marker)]
                if before:
                    emit(name, before)
                return
            emit(name, line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class JShellKernel(Kernel):
    """Java cells, run by a persistent jshell."""

    implementation = "sandbox-magic-jshell"
    implementation_version = "0.1"
    language = "java"
    language_version = "17"
    language_info = {
        "name": "java",
        "mimetype": "text/x-java-source",
        "file_extension": ".jshell",
        "codemirror_mode": "text/x-java",
    }
    banner = "Java (jshell) kernel of sandbox-magic"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        executable = find_jshell()
        if executable is None:
            raise RuntimeError("jshell was not found (install a JDK)")
        self._executable = executable
        # jshell takes seconds to start (more on a busy machine): start it in the
        # background, so the kernel answers at once and the first cell waits for it.
        self._starting = concurrent.futures.ThreadPoolExecutor(max_workers=1).submit(
            _JShell, executable
        )
        self._started: _JShell | None = None

    @property
    def _shell(self) -> _JShell:
        if self._started is None:
            self._started = self._starting.result()
        return self._started

    @_shell.setter
    def _shell(self, shell: _JShell) -> None:
        self._started = shell

    def _stream(self, name: str, text: str) -> None:
        self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    async def do_execute(
        self,
        code: Any,
        silent: Any,
        store_history: Any = True,
        user_expressions: Any = None,
        allow_stdin: Any = False,
        *,
        cell_meta: Any = None,
        cell_id: Any = None,
    ) -> dict[str, Any]:
        """Run the cell in jshell (blocking: an interrupt lands here as SIGINT)."""
        problems: list[str] = []

        def emit(name: str, line: str) -> None:
            if name == "stdout" and line.startswith("|"):
                problems.append(line.rstrip("\n"))
            elif not silent:
                self._stream(name, line)

        try:
            if code.strip():
                self._shell.send(code)
            self._shell.run_until_marker(emit)
        except KeyboardInterrupt:
            self._restart()
            return self._error(
                "KeyboardInterrupt", "interrupted; jshell was restarted and its state is lost"
            )
        except (EOFError, OSError):
            self._restart()
            return self._error("JShellExited", "jshell exited; a fresh one was started")
        if problems:
            return self._error(*_describe(problems), traceback=problems)
        return {
            "status": "ok",
            "execution_count": self.execution_count,
            "payload": [],
            "user_expressions": {},
        }

    def _error(
        self, name: str, value: str, *, traceback: list[str] | None = None
    ) -> dict[str, Any]:
        content = {
            "ename": name,
            "evalue": value,
            "traceback": traceback or [f"{name}: {value}"],
        }
        self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}

    def _restart(self) -> None:
        self._shell.close()
        self._shell = _JShell(self._executable)

    async def do_shutdown(self, restart: Any) -> dict[str, Any]:
        self._shell.close()
        return {"status": "ok", "restart": restart}


def _describe(problems: list[str]) -> tuple[str, str]:
    """``(name, value)`` of jshell's report of a failed snippet."""
    for line in problems:
        found = _EXCEPTION.match(line)
        if found:
            return found.group(1).rsplit(".", 1)[-1], found.group(2) or ""
    detail = " ".join(line.lstrip("|").strip() for line in problems[1:3] if line.strip("| "))
    return "CompilationError", detail or problems[0].lstrip("|").strip()


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=JShellKernel)
