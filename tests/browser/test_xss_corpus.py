"""A public XSS corpus through the real bundle pipeline, rendered in Chromium: nothing may run.

Every vector (``xss_corpus/vectors.json``: DOMPurify's fixtures, the HTML5 Security
Cheatsheet, markdown-it's XSS fixtures; plus the holes found by hand in
``hand_found.json``) is published by a hostile sandbox as ``text/html``,
``image/svg+xml`` and ``text/markdown``. `result_bundle` turns each into what
the bridge would publish, and `ScriptCatcher` renders that the way JupyterLab
renders trusted output (SVG inlined, as nbconvert and other frontends do, which
is stricter than JupyterLab's ``<img>``). A control run renders the same vectors
without the sanitiser, to show that the harness catches what runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from sandbox_magic.client import Result
from sandbox_magic.render.bundle import result_bundle
from sandbox_magic.render.markdown_html import markdown_to_html

from .xss_harness import ScriptCatcher

pytestmark = pytest.mark.browser

CORPUS_DIR = Path(__file__).parent / "xss_corpus"
BATCH = 50
# Chromium ran more than this many corpus vectors raw when the test was written;
# fewer would mean that the harness stopped seeing script run.
MIN_RAW_HTML_RUNS = 100
MIN_RAW_MARKDOWN_RUNS = 60
# Shown form of each published type: Markdown is published as HTML.
SHOWN = {"text/html": "text/html", "image/svg+xml": "image/svg+xml", "text/markdown": "text/html"}


def _load(name: str) -> list[dict[str, str]]:
    vectors: list[dict[str, str]] = json.loads((CORPUS_DIR / name).read_text("utf-8"))
    return vectors


CORPUS = _load("vectors.json")
HAND_FOUND = _load("hand_found.json")
ALL_VECTORS = CORPUS + HAND_FOUND


@pytest.fixture(scope="module")
def catcher(browser: Browser) -> Iterator[ScriptCatcher]:
    context = browser.new_context()
    try:
        yield ScriptCatcher(context.new_page())
    finally:
        context.close()


def _published(mime: str, payload: str) -> str:
    data, _ = result_bundle(Result(data={mime: payload, "text/plain": "<remote object>"}))
    shown = data.get(SHOWN[mime], "")
    assert isinstance(shown, str)
    return shown


def _culprits(catcher: ScriptCatcher, ids: list[str], markups: list[str]) -> list[str]:
    """Render in batches; a batch where anything ran is rendered one by one to name it."""
    found: list[str] = []
    for start in range(0, len(markups), BATCH):
        if not catcher.render(markups[start : start + BATCH]).ran:
            continue
        for vector_id, markup in zip(
            ids[start : start + BATCH], markups[start : start + BATCH], strict=True
        ):
            findings = catcher.render([markup])
            if findings.ran:
                found.append(f"{vector_id}: {findings.summary()} <- {markup[:120]!r}")
    return found


def test_harness_sees_a_handler_run_and_a_clean_page_stay_clean(catcher: ScriptCatcher) -> None:
    assert "alert: 1" in catcher.render(["<img src=x onerror=alert(1)>"]).dialogs
    assert catcher.render(["<svg><a href='javascript:alert(1)'><text>x</text></a></svg>"]).armed
    assert catcher.render(["<script src='http://sandbox-magic.test/x.js'></script>"]).ran
    assert not catcher.render(["<b>plain</b><img src='data:image/png;base64,AAAA'>"]).ran


@pytest.mark.parametrize("mime", list(SHOWN))
def test_no_vector_runs_script_after_the_pipeline(
    catcher: ScriptCatcher, mime: str, record_property: Any
) -> None:
    started = time.monotonic()
    ids = [vector["id"] for vector in ALL_VECTORS]
    markups = [_published(mime, vector["payload"]) for vector in ALL_VECTORS]  # never raises
    culprits = _culprits(catcher, ids, markups)
    elapsed = time.monotonic() - started
    record_property("vectors", len(markups))
    record_property("seconds", round(elapsed, 1))
    print(f"\n{mime}: {len(markups)} vectors, {len(culprits)} ran, {elapsed:.1f}s")
    assert not culprits, f"{len(culprits)} vectors ran script as {mime}:\n" + "\n".join(culprits)


def _raw_runs(catcher: ScriptCatcher, markups: list[str]) -> int:
    return sum(findings.ran for findings in catcher.render_each(markups))


def test_control_without_the_sanitiser_the_harness_catches_the_vectors(
    catcher: ScriptCatcher,
) -> None:
    started = time.monotonic()
    payloads = [vector["payload"] for vector in ALL_VECTORS]
    raw_html = _raw_runs(catcher, payloads)
    raw_markdown = _raw_runs(catcher, [markdown_to_html(payload) for payload in payloads])
    elapsed = time.monotonic() - started
    print(
        f"\ncontrol: {len(payloads)} vectors; raw as HTML {raw_html} ran, "
        f"rendered from Markdown unsanitised {raw_markdown} ran; {elapsed:.1f}s"
    )
    assert raw_html >= MIN_RAW_HTML_RUNS
    assert raw_markdown >= MIN_RAW_MARKDOWN_RUNS
