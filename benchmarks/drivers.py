"""The ways of running one cell that the benchmarks compare.

- `MagicDriver`: ``%%sandbox`` in a real in-process IPython shell, as a user types it.
- `floor_run`: raw HTTP, submit then poll every 2 ms; no poller does better.
- `SdkDriver`: the service's own SDK (``nullspace-sdk``), ``create_run`` +
  ``wait_for_run`` with its defaults, and its streaming ``run_code``.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from sandbox_magic.notebook.extension import loaded_magics

__all__ = [
    "TERMINAL",
    "MagicDriver",
    "SdkDriver",
    "create_context",
    "create_sandbox",
    "floor_run",
    "parse_time",
    "server_seconds",
]

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def parse_time(value: str | None) -> float | None:
    """An RFC 3339 timestamp as POSIX seconds."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def server_seconds(run: dict[str, Any]) -> float | None:
    """``completed_at - created_at`` of a run record: the server's own view of it."""
    created, completed = parse_time(run.get("created_at")), parse_time(run.get("completed_at"))
    if created is None or completed is None:
        return None
    return completed - created


def create_sandbox(client: httpx.Client) -> str:
    response = client.post("/v1/sandboxes", json={"template": "code-interpreter"})
    response.raise_for_status()
    return str(response.json()["id"])


def create_context(client: httpx.Client, sandbox_id: str) -> str:
    response = client.post(f"/v1/sandboxes/{sandbox_id}/code/contexts", json={})
    response.raise_for_status()
    return str(response.json()["id"])


def floor_run(
    client: httpx.Client, sandbox_id: str, context_id: str, code: str, interval: float = 0.002
) -> tuple[float, dict[str, Any]]:
    """Submit, then poll every ``interval`` seconds; the wall time and the final run."""
    start = time.perf_counter()
    response = client.post(
        f"/v1/sandboxes/{sandbox_id}/code/runs", json={"code": code, "context_id": context_id}
    )
    response.raise_for_status()
    run: dict[str, Any] = response.json()
    path = f"/v1/sandboxes/{sandbox_id}/code/runs/{run['id']}"
    while run["status"] not in TERMINAL:
        time.sleep(interval)
        response = client.get(path)
        response.raise_for_status()
        run = response.json()
    return time.perf_counter() - start, run


class SdkDriver:
    """The service's SDK pointed at one sandbox of the local server."""

    def __init__(self, url: str, token: str, sandbox_id: str) -> None:
        from nullspace import Sandbox  # type: ignore[import-untyped]

        self.sandbox = Sandbox.connect(sandbox_id, api_key=token, base_url=url)

    def create_and_wait(self, code: str, context_id: str) -> tuple[float, Any]:
        """``create_run`` then ``wait_for_run`` with the SDK's defaults."""
        interpreter = self.sandbox.code_interpreter
        start = time.perf_counter()
        run = interpreter.create_run(code, context=context_id)
        final = interpreter.wait_for_run(run.id)
        return time.perf_counter() - start, final

    def run_code(self, code: str) -> tuple[float, Any]:
        """The SDK's streaming ``run_code`` (the sandbox's default context)."""
        start = time.perf_counter()
        execution = self.sandbox.run_code(code)
        return time.perf_counter() - start, execution

    def close(self) -> None:
        self.sandbox._client.close()


class MagicDriver:
    """``%%sandbox`` cells in the process's IPython shell, outputs captured."""

    def __init__(self, journal_dir: Path) -> None:
        from IPython.testing.globalipapp import start_ipython

        shell = start_ipython()  # type: ignore[no-untyped-call]
        assert shell is not None
        self.shell: Any = shell
        self._journal = journal_dir / "journal.jsonl"
        if loaded_magics(shell) is None:
            shell.run_line_magic("load_ext", "sandbox_magic")
        self.magics: Any = loaded_magics(shell)
        self.magics.journal_path = str(self._journal)

    def point_at(self, url: str, token: str) -> None:
        """Use this server from the next cell (a new session: new sandbox and context)."""
        self.magics.api_url = url
        self.magics.api_key = token

    def run(self, source: str) -> tuple[float, Any]:
        """Run one cell; its wall time and IPython's ExecutionResult. Raises if it failed."""
        from IPython.utils.capture import capture_output

        with capture_output():
            start = time.perf_counter()
            result = self.shell.run_cell(source)
            elapsed = time.perf_counter() - start
        if not result.success:
            raise RuntimeError(f"benchmark cell failed: {result.error_in_exec!r}")
        return elapsed, result

    def sandbox_id(self) -> str | None:
        session = self.magics.controller.active_session
        return session.sandbox_id if session is not None else None

    def close(self) -> None:
        """Unload the extension: the session, its sandbox and I/O thread go away."""
        self.shell.run_line_magic("unload_ext", "sandbox_magic")
