"""The Markdown vector that ran script in JupyterLab, checked in real JupyterLab.

``<b <script>alert(1)//</script>0</script></b>`` published as ``text/markdown``
ran ``alert(1)`` in JupyterLab 4 when the old sanitiser cleaned the Markdown
source. Here a hostile ``%%sandbox`` cell publishes it (and two more vectors)
through the embedded local server; then, as the control, the local kernel
publishes the same Markdown directly, which JupyterLab trusts and runs. Dialogs
arrive in order, so seeing only the control's dialog shows that the sandbox
cell ran nothing.
"""

from __future__ import annotations

import nbformat
import pytest
from playwright.sync_api import Dialog, Page, expect

from .lab import LabServer, NotebookPage

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 120_000
VECTOR = "<b <script>alert(1)//</script>0</script></b>"

SANDBOX_CELL = f"""\
%%sandbox
from IPython.display import HTML, Markdown, display
display(Markdown({VECTOR!r}))
display(Markdown("[link](javascript\\\\:alert(2)) <img src=x onerror=alert(2)>"))
display(HTML('<a href="javas&#10;cript:alert(3)">x</a><img src=x onerror=alert(3)>'))
display(Markdown("> quoted, with math $x^2 + y_1$"))
"""
CONTROL_CELL = f"""\
from IPython.display import Markdown, display
display(Markdown({VECTOR.replace("alert(1)", "alert('control')")!r}))
"""


def _write_notebook(path: str) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext sandbox_magic"),
        nbformat.v4.new_code_cell(SANDBOX_CELL),
        nbformat.v4.new_code_cell(CONTROL_CELL),
    ]
    nbformat.write(notebook, path)


def test_markdown_vector_runs_nothing_in_jupyterlab(
    browser_page: Page, jupyter_lab: LabServer
) -> None:
    dialogs: list[str] = []

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    browser_page.on("dialog", on_dialog)
    _write_notebook(str(jupyter_lab.root_dir / "hostile.ipynb"))
    notebook = NotebookPage(browser_page, jupyter_lab, "hostile.ipynb")
    notebook.open()
    expect(notebook.notebook.locator(".jp-Cell")).to_have_count(3, timeout=60_000)

    notebook.run_cell(0)
    notebook.wait_for_cell_done(0)
    notebook.run_cell(1)
    notebook.wait_for_cell_done(1, RUN_TIMEOUT_MS)
    outputs = notebook.outputs(1)
    expect(outputs.filter(has_text="<b 0")).to_have_count(1, timeout=10_000)
    expect(outputs.locator("script")).to_have_count(0)
    expect(outputs.locator("a[href^='javascript' i], [onerror]")).to_have_count(0)
    # Markdown published as HTML still looks like Markdown: quotes, and math typeset.
    quoted = outputs.locator("blockquote", has_text="quoted, with math")
    expect(quoted).to_have_count(1)
    expect(quoted.locator("mjx-container")).to_have_count(1, timeout=30_000)
    notebook.collapse_left_sidebar()
    notebook.screenshot("lab-remote-markup", notebook.cell(1))  # for reviewers

    # The control's script runs: the same check would have seen the sandbox's.
    with browser_page.expect_event("dialog", timeout=30_000):
        notebook.run_cell(2)
    notebook.wait_for_cell_done(2)
    assert dialogs == ["control"]
