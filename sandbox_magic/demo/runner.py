"""Execute a notebook headless with nbclient, on this interpreter's own kernel.

Used by ``sandbox-magic demo`` and by the test suite. The kernel is always the
``ipykernel`` of the running Python (not whatever ``python3`` kernelspec a user has
installed elsewhere), so the notebook sees the sandbox_magic that is installed here.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

__all__ = ["CellSummary", "ThisPythonKernelSpecs", "execute_notebook", "summarize_cells"]


class ThisPythonKernelSpecs(KernelSpecManager):
    """Answers every kernel name with a kernel run by this very interpreter."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        return KernelSpec(
            argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            display_name=f"Python {sys.version_info.major}.{sys.version_info.minor}",
            language="python",
            resource_dir="",
        )


@dataclass(frozen=True)
class CellSummary:
    """One line about one executed code cell."""

    index: int
    first_line: str
    outputs: str
    failed: bool
    expected_failure: bool = False

    def __str__(self) -> str:
        mark = "✗" if self.failed and not self.expected_failure else "✓"
        note = " (an error, as the cell intends)" if self.failed and self.expected_failure else ""
        return f"{mark} [{self.index}] {self.first_line[:60]:<60} {self.outputs}{note}"


def execute_notebook(
    path: Path,
    *,
    timeout: int = 600,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    allow_errors: bool = False,
) -> Any:
    """Execute a notebook and return it; cells tagged ``raises-exception`` may fail."""
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="sandbox-magic-kernel-") as sockets:
        # Local sockets in a private folder: nothing listens on the network.
        manager = KernelManager(
            kernel_name="python3",
            kernel_spec_manager=ThisPythonKernelSpecs(),
            transport="ipc",
            ip=str(Path(sockets) / "kernel"),
        )
        try:
            _execute(notebook, manager, path, timeout, env, cwd, allow_errors)
        finally:
            # nbclient leaves a kernel it was handed running: shut it down (gracefully,
            # so the extension stops its embedded server and that server its kernels).
            if manager.has_kernel:
                manager.shutdown_kernel(now=False)
    return notebook


def _execute(
    notebook: Any,
    manager: KernelManager,
    path: Path,
    timeout: int,
    env: Mapping[str, str] | None,
    cwd: Path | None,
    allow_errors: bool,
) -> None:
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=timeout,
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(cwd or path.parent)}},
        store_widget_state=True,
    )
    kwargs = {"env": dict(env)} if env is not None else {}
    client.execute(**kwargs)


def _describe_outputs(outputs: list[Any]) -> str:
    kinds: list[str] = []
    for output in outputs:
        kind = output.get("output_type", "?")
        if kind == "stream":
            kinds.append(output.get("name", "stream"))
        elif kind == "error":
            kinds.append(f"error {output.get('ename', '')}".strip())
        else:
            data = output.get("data", {})
            rich = [m for m in data if m != "text/plain"]
            label = "Out" if kind == "execute_result" else "display"
            kinds.append(f"{label} {rich[0] if rich else 'text/plain'}")
    return ", ".join(dict.fromkeys(kinds)) or "no output"


def summarize_cells(notebook: Any) -> list[CellSummary]:
    """A line per code cell: its first line and what it showed."""
    summaries = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if line.strip()]
        first = lines[0] if lines else ""
        if first.startswith("%%sandbox") and len(lines) > 1:
            first = f"{first.split()[0]} {lines[1].strip()}"
        failed = any(o.get("output_type") == "error" for o in cell.get("outputs", []))
        expected = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        summaries.append(
            CellSummary(index, first, _describe_outputs(cell.outputs), failed, expected)
        )
    return summaries
