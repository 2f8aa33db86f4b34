"""Helpers for driving ``%%sandbox`` through real notebook kernels.

Two ways in:

- `run_notebook`: build a notebook from cell sources with nbformat, execute it with
  nbclient (`sandbox_magic.demo.runner.execute_notebook`, this interpreter's own
  ipykernel), write it back and return it with the saved file's text.
- `KernelSession`: one kernel driven directly with jupyter_client, for what nbclient
  cannot do (interrupting a running cell, killing the kernel, restarting it).

Every kernel gets its own ``JUPYTER_DATA_DIR`` (journal and embedded server state)
and ``TMPDIR`` under the test's tmp dir, so nothing leaks between tests, and every
process an embedded server starts carries that tmp path on its command line.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import psutil
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager
from testkit import wait_until

from sandbox_magic.demo.runner import ThisPythonKernelSpecs, execute_notebook

#: Tag that lets a cell fail without stopping nbclient.
RAISES = "raises-exception"

_SCRUBBED = (
    "NULLSPACE_API_URL",
    "NULLSPACE_BASE_URL",
    "NULLSPACE_API_KEY",
    "NULLSPACE_TOKEN",
    "SANDBOX_MAGIC_HEADLESS",
    "JPY_PARENT_PID",
)


@dataclass(frozen=True)
class Cell:
    """A code cell to put in a notebook; ``tags`` such as `RAISES`."""

    source: str
    tags: tuple[str, ...] = ()


def kernel_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a notebook kernel isolated under ``home``.

    The sandbox URL and key are removed unless given in ``extra``.
    """
    data_dir = home / "jupyter-data"
    tmp_dir = home / "tmp"
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(JUPYTER_DATA_DIR=str(data_dir), TMPDIR=str(tmp_dir), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def remote_env(home: Path, server: Any) -> dict[str, str]:
    """A kernel environment pointing the magic at ``server`` (a ``LiveServer``)."""
    return kernel_env(home, NULLSPACE_API_URL=server.url, NULLSPACE_API_KEY=server.token)


def build_notebook(path: Path, cells: list[Cell | str]) -> Path:
    """Write a notebook holding ``cells`` (plain strings are untagged code cells)."""
    notebook = nbformat.v4.new_notebook()
    for cell in cells:
        cell = Cell(cell) if isinstance(cell, str) else cell
        metadata = {"tags": list(cell.tags)} if cell.tags else {}
        notebook.cells.append(nbformat.v4.new_code_cell(cell.source, metadata=metadata))
    nbformat.write(notebook, path)
    return path


@dataclass
class ExecutedNotebook:
    """An executed notebook, as nbformat read it back from disk, and the file's text."""

    path: Path
    notebook: Any
    text: str

    def cell(self, index: int) -> Any:
        return self.notebook.cells[index]

    def outputs(self, index: int) -> list[Any]:
        return list(self.notebook.cells[index].outputs)

    def stdout(self, index: int) -> str:
        return _stream_text(self.outputs(index), "stdout")

    def stderr(self, index: int) -> str:
        return _stream_text(self.outputs(index), "stderr")

    def bundles(self, index: int) -> list[dict[str, Any]]:
        """The data of every display and execute-result output of a cell."""
        return [dict(o.data) for o in self.outputs(index) if "data" in o]


def _stream_text(outputs: list[Any], name: str) -> str:
    return "".join(o.text for o in outputs if o.output_type == "stream" and o.get("name") == name)


def run_notebook(
    directory: Path,
    cells: list[Cell | str],
    env: Mapping[str, str],
    *,
    name: str = "notebook.ipynb",
    timeout: int = 120,
) -> ExecutedNotebook:
    """Build, execute (nbclient) and save a notebook; returns it as read from the file."""
    path = build_notebook(directory / name, cells)
    executed = execute_notebook(path, env=env, cwd=directory, timeout=timeout)
    nbformat.write(executed, path)
    text = path.read_text(encoding="utf-8")
    return ExecutedNotebook(path=path, notebook=nbformat.reads(text, as_version=4), text=text)


# -- polling ----------------------------------------------------------------------


# `wait_until` is the shared helper of tests/testkit.py, imported above.


def processes_mentioning(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line contains ``marker``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(marker in part for part in process.info["cmdline"] or ()):
                found.append(process)
    return found


def assert_all_gone(marker: str, *, timeout: float = 30.0) -> None:
    """Wait until no process mentions ``marker``; kill and fail if some stay."""
    try:
        wait_until(
            lambda: not processes_mentioning(marker),
            timeout=timeout,
            interval=0.1,
            what=f"processes mentioning {marker} to exit",
        )
    except AssertionError:
        leftovers = processes_mentioning(marker)
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        raise AssertionError(
            f"processes outlived the notebook kernel: {[p.info['cmdline'] for p in leftovers]}"
        ) from None


# -- a kernel driven with jupyter_client -----------------------------------------------


@dataclass
class Reply:
    """What one execute request produced: its reply and the iopub messages it caused."""

    reply: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.reply["content"]["status"])

    @property
    def error(self) -> str:
        """``ename: evalue`` of a failed request ('' when it succeeded)."""
        content = self.reply["content"]
        if content["status"] != "error":
            return ""
        return f"{content.get('ename', '')}: {content.get('evalue', '')}"

    def stream(self, name: str = "stdout") -> str:
        return "".join(
            m["content"]["text"]
            for m in self.messages
            if m["msg_type"] == "stream" and m["content"]["name"] == name
        )

    def data(self) -> list[dict[str, Any]]:
        """The data of every display, update and execute-result message."""
        kinds = ("display_data", "update_display_data", "execute_result")
        return [m["content"]["data"] for m in self.messages if m["msg_type"] in kinds]

    def text(self) -> str:
        """Everything shown, as plain text (streams, text/plain data, tracebacks)."""
        parts = [self.stream("stdout"), self.stream("stderr")]
        parts += [str(d.get("text/plain", "")) for d in self.data()]
        for m in self.messages:
            if m["msg_type"] == "error":
                parts += m["content"]["traceback"]
        parts.append(self.error)
        return "\n".join(parts)

    @property
    def result(self) -> str | None:
        """The ``text/plain`` of the ``Out[n]`` value, if any."""
        for m in self.messages:
            if m["msg_type"] == "execute_result":
                return str(m["content"]["data"].get("text/plain"))
        return None


class KernelSession:
    """One notebook kernel of this interpreter, driven over jupyter_client."""

    def __init__(self, env: Mapping[str, str], cwd: Path) -> None:
        self.manager = KernelManager(
            kernel_name="python3", kernel_spec_manager=ThisPythonKernelSpecs()
        )
        self.manager.start_kernel(env=dict(env), cwd=str(cwd))
        self.client: BlockingKernelClient = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)

    @property
    def pid(self) -> int:
        provisioner = self.manager.provisioner
        assert provisioner is not None
        process = getattr(provisioner, "process", None)
        assert process is not None, "the kernel has no local process"
        return int(process.pid)

    def send(self, code: str) -> str:
        """Start executing ``code`` headless (like nbclient: no stdin); its msg id."""
        return str(self.client.execute(code, allow_stdin=False, stop_on_error=False))

    def collect(
        self,
        msg_id: str,
        *,
        timeout: float = 120.0,
        until: Callable[[dict[str, Any]], bool] | None = None,
        into: list[dict[str, Any]] | None = None,
    ) -> Reply | None:
        """Read iopub messages of ``msg_id`` until the kernel is idle again, then the reply.

        With ``until``, stop early (returning None) as soon as a message satisfies it;
        messages read so far are appended to ``into``.
        """
        messages = into if into is not None else []
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no idle status for {msg_id} within {timeout:.0f} s")
            try:
                message = self.client.get_iopub_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                continue
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind = message["msg_type"]
            if kind == "status":
                if message["content"]["execution_state"] == "idle":
                    break
                continue
            messages.append(message)
            if until is not None and until(message):
                return None
        reply = self._reply(msg_id, deadline)
        return Reply(reply=reply, messages=messages)

    def _reply(self, msg_id: str, deadline: float) -> dict[str, Any]:
        while True:
            remaining = max(0.1, deadline - time.monotonic())
            reply = self.client.get_shell_msg(timeout=remaining)
            if reply["parent_header"].get("msg_id") == msg_id:
                return dict(reply)

    def execute(self, code: str, *, timeout: float = 120.0) -> Reply:
        """Execute ``code`` and wait for it to finish."""
        reply = self.collect(self.send(code), timeout=timeout)
        assert reply is not None
        return reply

    def shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop_channels()
        with contextlib.suppress(Exception):
            if self.manager.has_kernel:
                self.manager.shutdown_kernel(now=False)
        with contextlib.suppress(Exception):
            self.manager.cleanup_resources()


# -- one notebook of every kind of output, executed once per session ---------------------

#: Named cells of the showcase notebook, in order.
SHOWCASE: dict[str, Cell] = {
    "load": Cell("%load_ext sandbox_magic"),
    "print_and_out": Cell("%%sandbox\nprint('hello from the sandbox')\n6 * 7"),
    "plot": Cell(
        "%%sandbox\nimport matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.title('squares')\n"
        "plt.show()"
    ),
    "dataframe": Cell(
        "%%sandbox\nimport pandas as pd\npd.DataFrame({'left': [1, 2], 'right': [3, 4]})"
    ),
    "sympy": Cell(
        "%%sandbox\nimport sympy\nx = sympy.Symbol('x')\nsympy.Integral(sympy.sqrt(x), x)"
    ),
    "remote_error": Cell(
        "%%sandbox\ndef divide(a, b):\n    return a / b\n\ndivide(1, 0)", (RAISES,)
    ),
    "no_raise": Cell("%%sandbox --no-raise\nraise ValueError('shown, not raised')"),
    "out": Cell("%%sandbox --out r\nprint('kept')\n2 + 2"),
    "read_out": Cell("print(r.status, r.id, r.execution.logs.stdout)"),
    "config": Cell("%config SandboxMagics"),
    "status": Cell("%sandbox status"),
    "slow": Cell(
        "%%sandbox --out slow\nimport time\nfor i in range(3):\n"
        "    print('tick', i, flush=True)\n    time.sleep(0.5)"
    ),
    "slow_id": Cell("print(slow.id)"),
    "wrong_url": Cell("%config SandboxMagics.api_url = 'http://127.0.0.1:9'"),
    "unreachable": Cell("%%sandbox\n1", (RAISES,)),
}


@dataclass
class Showcase:
    """The executed showcase notebook, its cells addressed by name."""

    executed: ExecutedNotebook
    token: str

    def index(self, name: str) -> int:
        return list(SHOWCASE).index(name)

    def cell(self, name: str) -> Any:
        return self.executed.cell(self.index(name))

    def outputs(self, name: str) -> list[Any]:
        return self.executed.outputs(self.index(name))

    def stdout(self, name: str) -> str:
        return self.executed.stdout(self.index(name))

    def stderr(self, name: str) -> str:
        return self.executed.stderr(self.index(name))

    def bundles(self, name: str) -> list[dict[str, Any]]:
        return self.executed.bundles(self.index(name))
