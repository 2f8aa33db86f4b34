"""``sandbox-magic demo``: run the quickstart notebook headless and render it to HTML."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from sandbox_magic.demo.runner import execute_notebook, summarize_cells

__all__ = ["default_notebook", "run_demo"]


def default_notebook(name: str = "quickstart.ipynb") -> Path:
    """A demo notebook: the copy installed with the package, else the checkout's."""
    here = Path(__file__).resolve().parent
    installed = here / "notebooks" / name
    if installed.is_file():
        return installed
    return here.parent.parent / "notebooks" / name


def run_demo(notebook: Path | None = None, output_dir: Path | None = None) -> int:
    """Execute a notebook, write ``<name>.executed.ipynb`` and ``.html``; 0 on success.

    Both go to ``output_dir``, by default the current folder; the notebook runs there
    too (so files it writes land beside its outputs, never inside the installation).
    """
    source = notebook or default_notebook()
    if not source.is_file():
        print(f"No notebook at {source}; pass one with --notebook PATH.", file=sys.stderr)
        return 2
    target_dir = (output_dir or Path.cwd()).resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    stem = source.name.removesuffix(".ipynb")
    executed_path = target_dir / f"{stem}.executed.ipynb"
    html_path = target_dir / f"{stem}.executed.html"

    print(f"Executing {source.name} against the embedded local sandbox server ...", flush=True)
    started = time.perf_counter()
    executed = execute_notebook(source, cwd=target_dir)
    elapsed = time.perf_counter() - started

    nbformat.write(executed, executed_path)
    body, _ = HTMLExporter().from_notebook_node(executed)
    html_path.write_text(body, encoding="utf-8")

    for summary in summarize_cells(executed):
        print(summary)
    print(f"\nExecuted in {elapsed:.1f} s.")
    print(f"Notebook: {executed_path}")
    print(f"HTML:     {html_path}")
    return 0
