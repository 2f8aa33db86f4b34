"""What a person sees: progress bars, display updates, sound and charts in JupyterLab,
and the quickstart in Notebook 7, all in real Chromium.

Screenshots of the progress and display-update cells land in test-artifacts/browser/.
"""

from __future__ import annotations

import re
import shutil
import time
import urllib.error
from urllib.parse import quote

import pytest
from playwright.sync_api import Locator, Page, expect

from .lab import REPO_ROOT, LabServer, NotebookPage
from .test_lab_browser import (
    PNG_SELECTOR,
    QUICKSTART,
    QUICKSTART_MAX_CELLS,
    RUN_TIMEOUT_MS,
    STATUS_SELECTOR,
    SUMMARY_SELECTOR,
    assert_png_rendered,
    error_texts,
)

pytestmark = pytest.mark.browser

MEDIA = REPO_ROOT / "notebooks" / "progress-and-media.ipynb"


def _code_cell(notebook: NotebookPage, fragment: str) -> int:
    """Index of the code cell whose text contains ``fragment``."""
    for index in notebook.code_cell_indices():
        if fragment in notebook.cell(index).locator(".jp-InputArea").inner_text():
            return index
    raise AssertionError(f"no code cell contains {fragment!r}")


def _run(notebook: NotebookPage, index: int) -> Locator:
    notebook.run_cell(index)
    notebook.wait_for_cell_done(index, RUN_TIMEOUT_MS)
    errors = error_texts(notebook.outputs(index))
    assert not errors, f"cell {index} failed in the browser:\n" + "\n".join(errors)
    return notebook.cell(index)


def test_progress_updates_sound_and_chart_in_lab(
    browser_page: Page, jupyter_lab: LabServer
) -> None:
    shutil.copy(MEDIA, jupyter_lab.root_dir / "progress-and-media.ipynb")
    notebook = NotebookPage(browser_page, jupyter_lab, "progress-and-media.ipynb")
    notebook.open()
    notebook.collapse_left_sidebar()
    _run(notebook, _code_cell(notebook, "%load_ext sandbox_magic"))

    updated = _run(notebook, _code_cell(notebook, "Training: 0%"))
    outputs = updated.locator(".jp-OutputArea-output")
    expect(outputs.first.locator(".sandbox-magic-summary")).to_have_count(1, timeout=10_000)
    expect(updated.locator(".jp-OutputArea")).to_contain_text("Training: 100%")
    expect(updated.locator(".jp-OutputArea")).not_to_contain_text("Training: 75%")
    updated.scroll_into_view_if_needed()
    notebook.screenshot("fidelity-display-update", updated)

    bars = _run(notebook, _code_cell(notebook, "tqdm.auto"))
    expect(bars.locator(SUMMARY_SELECTOR)).to_have_count(1, timeout=10_000)
    stderr = bars.locator("[data-mime-type='application/vnd.jupyter.stderr']")
    text = "\n".join(stderr.all_inner_texts())
    frames = [line for line in text.splitlines() if line.startswith("Epochs")]
    assert len(frames) == 1, text  # Lab applied the \r frames: one finished bar
    assert "100%" in frames[0]
    assert "widget" not in bars.locator(".jp-OutputArea").inner_text()
    bars.scroll_into_view_if_needed()
    notebook.screenshot("fidelity-tqdm", bars)

    sound = _run(notebook, _code_cell(notebook, "Audio("))
    source = sound.locator("audio source")
    expect(source).to_have_count(1, timeout=10_000)
    assert (source.get_attribute("src") or "").startswith("data:audio/wav;base64,")

    chart = _run(notebook, _code_cell(notebook, "alt.Chart"))
    # Lab's own vega renderer draws the vega-lite bundle (no remote script ran).
    expect(chart.locator(".vega-embed")).to_have_count(1, timeout=RUN_TIMEOUT_MS)
    expect(chart.locator(".vega-embed canvas, .vega-embed svg").first).to_be_visible()


class Notebook7Page(NotebookPage):
    """A notebook open in Notebook 7 (``/notebooks/...``): one notebook per page."""

    def open(self, timeout_ms: float = 90_000) -> None:
        url = f"{self.server.url}/notebooks/{quote(self.relative_path)}?token={self.server.token}"
        self.page.goto(url, timeout=timeout_ms)
        expect(self.notebook.locator(".jp-Cell").first).to_be_visible(timeout=timeout_ms)
        self._wait_for_idle_kernel(timeout_ms / 1000)
        self.server.record_children()

    def _wait_for_idle_kernel(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                sessions = self.server.api("sessions") or []
            except (urllib.error.URLError, ConnectionError):
                sessions = []
            mine = [s for s in sessions if s.get("path", "").endswith(self.relative_path)]
            if mine and mine[0]["kernel"].get("execution_state") == "idle":
                # The page's own kernel indicator agrees once its websocket is up.
                expect(
                    self.page.locator(".jp-Notebook-ExecutionIndicator").first
                ).to_have_attribute("data-status", "idle", timeout=timeout * 1000)
                return
            if time.monotonic() > deadline:
                raise AssertionError("the Notebook 7 kernel did not become idle")
            time.sleep(0.2)  # polling the server's REST API, not synchronising

    @property
    def panel(self) -> Locator:
        return self.page.locator(".jp-NotebookPanel").first


def test_quickstart_in_notebook_7_shows_status_summary_and_png(
    browser_page: Page, jupyter_lab: LabServer
) -> None:
    shutil.copy(QUICKSTART, jupyter_lab.root_dir / "quickstart-nb7.ipynb")
    notebook = Notebook7Page(browser_page, jupyter_lab, "quickstart-nb7.ipynb")
    notebook.open()
    status_seen = False
    plot_cell: int | None = None
    for index in notebook.code_cell_indices()[:QUICKSTART_MAX_CELLS]:
        cell = notebook.cell(index)
        editor = cell.locator(".jp-InputArea-editor")
        is_sandbox = editor.inner_text().lstrip().startswith("%%sandbox")
        notebook.run_cell(index)
        if is_sandbox:
            finished = cell.locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]:"))
            status = cell.locator(STATUS_SELECTOR)
            expect(status.or_(finished).first).to_be_visible(timeout=RUN_TIMEOUT_MS)
            if status.count():
                status_seen = True
                cell.scroll_into_view_if_needed()
                notebook.screenshot("quickstart-notebook7-running")
            elif "time.sleep" in cell.inner_text():
                notebook.screenshot("quickstart-notebook7-no-status")
        notebook.wait_for_cell_done(index, RUN_TIMEOUT_MS)
        errors = error_texts(notebook.outputs(index))
        assert not errors, f"cell {index} failed in Notebook 7:\n" + "\n".join(errors)
        if is_sandbox:
            expect(cell.locator(SUMMARY_SELECTOR)).to_have_count(1, timeout=10_000)
            expect(cell.locator(STATUS_SELECTOR)).to_have_count(0)
        if cell.locator(PNG_SELECTOR).count():
            plot_cell = index
            break
    assert status_seen, "no live status widget seen in Notebook 7"
    assert plot_cell is not None, "no PNG plot in the first quickstart cells in Notebook 7"
    assert_png_rendered(notebook.cell(plot_cell).locator(PNG_SELECTOR).first)
    notebook.screenshot("quickstart-notebook7")
