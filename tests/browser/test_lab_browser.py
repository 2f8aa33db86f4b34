"""Real-browser checks: JupyterLab 4 + ipywidgets 8 in headless Chromium, driven by Playwright.

What the page must show for a ``%%sandbox`` run (the contract with ``status.py``):

* while the run goes, a live ipywidgets view in the cell's output area that
  carries the CSS class ``sandbox-magic-status``, on the view itself
  (``widget.add_class``) or on an element of its HTML;
* once it ends, that output replaced in place (same display id) by static HTML
  containing an element with class ``sandbox-magic-summary``, and no status
  widget left;
* plots as ``<img src="data:image/png;...">`` rendered by Lab's image renderer.

The stand-in test proves the harness itself with a notebook that fakes exactly
that contract using plain ipywidgets and matplotlib.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Locator, Page, expect

from .lab import REPO_ROOT, LabServer, NotebookPage

pytestmark = pytest.mark.browser

# The class may sit on the widget view itself (``add_class``) or on HTML inside it;
# either way it must be inside an ipywidgets view, not the headless HTML fallback.
STATUS_SELECTOR = (
    ".jp-OutputArea-output .jupyter-widgets.sandbox-magic-status,"
    " .jp-OutputArea-output .jupyter-widgets .sandbox-magic-status"
)
SUMMARY_SELECTOR = ".jp-OutputArea-output .sandbox-magic-summary"
PNG_SELECTOR = ".jp-OutputArea-output img[src^='data:image/png']"

QUICKSTART = REPO_ROOT / "notebooks" / "quickstart.ipynb"
README_SCREENSHOT = REPO_ROOT / "docs" / "images" / "quickstart-lab.png"

# The first remote run can include starting the embedded server and a kernel on it.
RUN_TIMEOUT_MS = 120_000
# At most this many leading code cells are run while looking for the first plot.
QUICKSTART_MAX_CELLS = 8

STANDIN_STATUS_CELL = """\
import time

import ipywidgets as widgets
from IPython.display import display

status = widgets.HTML("<b>sandbox</b> · queued")
status.add_class("sandbox-magic-status")
handle = display(status, display_id=True)
started = time.monotonic()
for _ in range(8):
    time.sleep(0.3)
    status.value = f"<b>sandbox</b> · running · {time.monotonic() - started:.1f}s"
summary = (
    '<span class="sandbox-magic-summary">'
    f"sandbox · succeeded in {time.monotonic() - started:.1f}s · run r-standin</span>"
)
handle.update({"text/plain": "sandbox: succeeded", "text/html": summary}, raw=True)
status.close()
"""

STANDIN_PLOT_CELL = """\
%matplotlib inline
import matplotlib.pyplot as plt

plt.plot([1, 4, 9])
plt.title("stand-in plot")
plt.show()
"""


def write_standin_notebook(path: Path) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.cells = [
        nbformat.v4.new_code_cell(STANDIN_STATUS_CELL),
        nbformat.v4.new_code_cell(STANDIN_PLOT_CELL),
    ]
    nbformat.write(notebook, str(path))


def assert_png_rendered(image: Locator) -> None:
    expect(image).to_be_visible(timeout=RUN_TIMEOUT_MS)
    # naturalWidth > 0 means the browser actually decoded the PNG, not just inserted a tag.
    expect(image).to_have_js_property("complete", True)
    width = image.evaluate("img => img.naturalWidth")
    assert width > 0, "PNG output did not decode in the browser"


def error_texts(outputs: Locator) -> list[str]:
    texts = outputs.locator("[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
    return [text for text in texts if re.search(r"Traceback|\w+Error\b", text)]


def test_standin_status_widget_then_summary_then_plot(
    browser_page: Page, jupyter_lab: LabServer
) -> None:
    write_standin_notebook(jupyter_lab.root_dir / "standin.ipynb")
    notebook = NotebookPage(browser_page, jupyter_lab, "standin.ipynb")
    notebook.open()

    notebook.run_cell(0)
    status = notebook.cell(0).locator(STATUS_SELECTOR).first
    expect(status).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(status).to_contain_text("sandbox")
    # The view is live: its text changes while the cell is still running.
    first_text = status.inner_text()
    expect(status).not_to_have_text(first_text, timeout=10_000)

    summary = notebook.cell(0).locator(SUMMARY_SELECTOR)
    expect(summary).to_be_visible(timeout=RUN_TIMEOUT_MS)
    expect(summary).to_contain_text("succeeded")
    expect(notebook.cell(0).locator(STATUS_SELECTOR)).to_have_count(0)
    # Replaced in place: one output, the summary, not the summary appended after the widget.
    expect(notebook.outputs(0)).to_have_count(1)
    notebook.wait_for_cell_done(0)

    notebook.run_cell(1)
    assert_png_rendered(notebook.cell(1).locator(PNG_SELECTOR))
    notebook.wait_for_cell_done(1)
    assert not error_texts(notebook.outputs(1))

    notebook.collapse_left_sidebar()
    notebook.cell(1).scroll_into_view_if_needed()
    shot = notebook.screenshot("standin")
    assert shot.stat().st_size > 10_000


@pytest.mark.skipif(not QUICKSTART.is_file(), reason="quickstart notebook not present yet")
def test_quickstart_sandbox_cells_in_lab(browser_page: Page, jupyter_lab: LabServer) -> None:
    shutil.copy(QUICKSTART, jupyter_lab.root_dir / "quickstart.ipynb")
    source_cells = nbformat.read(str(QUICKSTART), as_version=4).cells

    notebook = NotebookPage(browser_page, jupyter_lab, "quickstart.ipynb")
    notebook.open()
    # Lab renders a notebook's cells progressively: wait until all of them are there.
    expect(notebook.notebook.locator(".jp-Cell")).to_have_count(len(source_cells), timeout=60_000)
    code_indices = notebook.code_cell_indices()
    assert code_indices, "quickstart has no code cells"

    status_seen_in: list[int] = []
    sandbox_cells_run: list[int] = []
    plot_cell: int | None = None
    for index in code_indices[:QUICKSTART_MAX_CELLS]:
        cell_source = source_cells[index]
        if "raises-exception" in cell_source.metadata.get("tags", []):
            break
        is_sandbox = cell_source.source.lstrip().startswith("%%sandbox")
        cell = notebook.cell(index)
        notebook.run_cell(index)
        if is_sandbox:
            sandbox_cells_run.append(index)
            status = cell.locator(STATUS_SELECTOR)
            finished = cell.locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]:"))
            # Either the live view shows up (runs longer than the no-flicker delay),
            # or the cell finishes first (fast runs show only the summary).
            expect(status.or_(finished).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
            if status.count():
                status_seen_in.append(index)
                if len(status_seen_in) == 1:
                    # For reviewers: what the live line looks like mid-run.
                    notebook.screenshot("quickstart-lab-running")
        notebook.wait_for_cell_done(index, RUN_TIMEOUT_MS)
        errors = error_texts(notebook.outputs(index))
        assert not errors, f"cell {index} failed in the browser:\n" + "\n".join(errors)
        if is_sandbox:
            # One summary per run; it may trail the execute reply by a moment.
            expect(cell.locator(SUMMARY_SELECTOR)).to_have_count(1, timeout=10_000)
            expect(cell.locator(SUMMARY_SELECTOR)).to_be_visible()
            expect(cell.locator(STATUS_SELECTOR)).to_have_count(0)
        if cell.locator(PNG_SELECTOR).count():
            plot_cell = index
            break

    assert sandbox_cells_run, "no %%sandbox cell among the first quickstart cells"
    assert status_seen_in, (
        "no live status widget seen in %%sandbox cells "
        f"{sandbox_cells_run}; one of the first cells should run for a couple of seconds"
    )
    assert plot_cell is not None, (
        f"no PNG plot in the first {QUICKSTART_MAX_CELLS} code cells of the quickstart"
    )
    assert_png_rendered(notebook.cell(plot_cell).locator(PNG_SELECTOR).first)

    notebook.collapse_left_sidebar()
    notebook.cell(plot_cell).scroll_into_view_if_needed()
    shot = notebook.screenshot("quickstart-lab")
    if os.environ.get("SANDBOX_MAGIC_UPDATE_SCREENSHOT") == "1":  # refresh the README's image
        README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, README_SCREENSHOT)
