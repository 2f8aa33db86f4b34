"""Fixtures for the transfer tests: real Jupyter kernels and an in-process stand-in.

`KernelSandbox` plays the sandbox with a real ipykernel (the venv's ``python3``
kernel): `run_code` executes the generated code there and returns the run's
``display_data`` / ``execute_result`` bundles, raising `RemoteExecutionError` on an
error, as the real client does.

`InProcessSandbox` runs the generated snippets in a plain dict namespace of this
process, collecting what they display. It is quick and lets tests tamper with the
answers; it executes only the code this package generated, the way a sandbox would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from sandbox_magic.client import RemoteExecutionError


class KernelSandbox:
    """A real kernel driven through jupyter_client's blocking client."""

    def __init__(self) -> None:
        self.manager, self.client = start_new_kernel(kernel_name="python3")
        self.runs = 0

    def execute(self, code: str) -> list[dict[str, Any]]:
        bundles: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []

        def hook(msg: dict[str, Any]) -> None:
            kind = msg["msg_type"]
            if kind in ("display_data", "execute_result"):
                bundles.append(msg["content"]["data"])
            elif kind == "error":
                errors.append(msg["content"])

        reply = self.client.execute_interactive(code, output_hook=hook, timeout=300)
        self.runs += 1
        if errors or reply["content"]["status"] != "ok":
            error = errors[0] if errors else reply["content"]
            raise RemoteExecutionError(
                error.get("ename", "Error"), error.get("evalue", ""), error.get("traceback", [])
            )
        return bundles

    async def run_code(self, code: str) -> list[dict[str, Any]]:
        return self.execute(code)

    def eval(self, expression: str) -> Any:
        """The value of a JSON-able expression in the kernel."""
        bundles = self.execute(
            f"import json as _j\nfrom IPython.display import display as _d\n"
            f"_d({{'application/json': _j.loads(_j.dumps({expression}))}}, raw=True)\n"
            "del _j, _d"
        )
        return bundles[-1]["application/json"]

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture(scope="session")
def kernel() -> Iterator[KernelSandbox]:
    sandbox = KernelSandbox()
    try:
        yield sandbox
    finally:
        sandbox.close()


@pytest.fixture
def fresh_kernel() -> Iterator[KernelSandbox]:
    sandbox = KernelSandbox()
    try:
        yield sandbox
    finally:
        sandbox.close()


class InProcessSandbox:
    """Runs generated snippets in a private namespace of this process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import IPython.display

        self.ns: dict[str, Any] = {"__name__": "__sandbox__"}
        self.runs: list[str] = []
        self._shown: list[dict[str, Any]] = []
        #: Called on every run's bundles before they are returned (for tampering).
        self.tamper: Callable[[int, list[dict[str, Any]]], list[dict[str, Any]]] | None = None

        def display(obj: Any, raw: bool = False, **_: Any) -> None:
            assert raw
            self._shown.append(json.loads(json.dumps(obj)))  # as over the wire

        monkeypatch.setattr(IPython.display, "display", display)

    async def run_code(self, code: str) -> list[dict[str, Any]]:
        self._shown = []
        self.runs.append(code)
        try:
            exec(compile(code, "<sandbox>", "exec"), self.ns)
        except Exception as exc:
            raise RemoteExecutionError(type(exc).__name__, str(exc), []) from exc
        shown = self._shown
        if self.tamper is not None:
            shown = self.tamper(len(self.runs) - 1, shown)
        return shown

    def run(self, code: str) -> list[dict[str, Any]]:
        return asyncio.run(self.run_code(code))


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> InProcessSandbox:
    return InProcessSandbox(monkeypatch)
