"""Ordinary outputs keep their DOM through the sanitiser, as Chromium parses both.

Each output (``tests/benign_outputs.py``) is inserted raw and sanitised into the
page with ``innerHTML``, as JupyterLab does; the two DOMs must serialise alike,
apart from what the sanitiser adds or drops on purpose (``rel`` on links, SVG
``<metadata>``, comments). matplotlib SVG is also shown the way JupyterLab shows
``image/svg+xml``, as an ``<img>`` of a ``data:`` URL, which must decode at the
same size as the original.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest
from benign_outputs import benign_outputs
from playwright.sync_api import Browser, Page

from sandbox_magic.client import Result
from sandbox_magic.render.bundle import result_bundle
from sandbox_magic.render.markdown_html import markdown_to_html

pytestmark = pytest.mark.browser

OUTPUTS = benign_outputs()

_SERIALISE = """
([raw, clean]) => {
  const parse = (markup) => {
    const host = document.createElement('div');
    host.innerHTML = markup;
    const walker = document.createTreeWalker(host, NodeFilter.SHOW_COMMENT);
    const comments = [];
    while (walker.nextNode()) comments.push(walker.currentNode);
    comments.forEach((node) => node.remove());
    host.querySelectorAll('metadata').forEach((node) => node.replaceChildren());
    return host;
  };
  const original = parse(raw);
  const rel = 'noopener noreferrer';
  original.querySelectorAll('a[href]').forEach((node) => node.setAttribute('rel', rel));
  return [original.innerHTML.trim(), parse(clean).innerHTML.trim()];
}
"""

_IMAGE_SIZE = """
async (src) => {
  const image = new Image();
  image.src = src;
  try { await image.decode(); } catch (error) { return [0, 0]; }
  return [image.naturalWidth, image.naturalHeight];
}
"""


@pytest.fixture(scope="module")
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<!doctype html><title>dom</title>")
        yield page
    finally:
        context.close()


def _published(mime: str, markup: str) -> str:
    data, _ = result_bundle(Result(data={mime: markup, "text/plain": "<object>"}))
    shown = data["image/svg+xml" if mime == "image/svg+xml" else "text/html"]
    assert isinstance(shown, str)
    return shown


@pytest.mark.parametrize(("name", "mime", "markup"), OUTPUTS, ids=[o[0] for o in OUTPUTS])
def test_benign_output_keeps_its_dom(page: Page, name: str, mime: str, markup: str) -> None:
    raw = markdown_to_html(markup) if mime == "text/markdown" else markup
    original, cleaned = page.evaluate(_SERIALISE, [raw, _published(mime, markup)])
    assert cleaned == original


@pytest.mark.parametrize("fonttype", ["path", "none"])
def test_matplotlib_svg_shows_as_an_image_at_its_size(page: Page, fonttype: str) -> None:
    name = f"matplotlib svg, fonttype {fonttype}"
    markup = next(o[2] for o in OUTPUTS if o[0] == name)
    sizes = [
        page.evaluate(_IMAGE_SIZE, "data:image/svg+xml," + quote(svg))
        for svg in (markup, _published("image/svg+xml", markup))
    ]
    assert sizes[0][0] > 0
    assert sizes[1] == sizes[0]
