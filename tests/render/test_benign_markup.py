"""Ordinary outputs keep their content through the sanitiser (the DOM check is in tests/browser)."""

from __future__ import annotations

import re

import pytest
from benign_outputs import benign_outputs

from sandbox_magic.client import Result
from sandbox_magic.render.bundle import result_bundle

OUTPUTS = {name: (mime, markup) for name, mime, markup in benign_outputs()}


def published(name: str) -> str:
    mime, markup = OUTPUTS[name]
    data, _ = result_bundle(Result(data={mime: markup}))
    shown = data["image/svg+xml" if mime == "image/svg+xml" else "text/html"]
    assert isinstance(shown, str)
    return shown


def tags(markup: str, name: str) -> int:
    return len(re.findall(rf"<{name}[\s>/]", markup))


def test_pandas_table_is_kept_byte_for_byte() -> None:
    assert published("pandas to_html") == OUTPUTS["pandas to_html"][1]


def test_pandas_repr_and_styler_keep_their_css_and_ids() -> None:
    assert "<style scoped" in published("pandas repr")
    assert ".dataframe tbody tr th:only-of-type" in published("pandas repr")
    styler = published("pandas Styler")
    css_id = re.search(r"#(T_\w+?)_row1_col1", styler)
    assert css_id is not None
    assert "background-color: yellow" in styler
    assert f'<table id="{css_id.group(1)}">' in styler


@pytest.mark.parametrize("fonttype", ["path", "none"])
def test_matplotlib_svg_keeps_every_element(fonttype: str) -> None:
    name = f"matplotlib svg, fonttype {fonttype}"
    original, cleaned = OUTPUTS[name][1], published(name)
    for tag in ("use", "path", "text", "g", "clipPath", "style"):
        assert tags(cleaned, tag) == tags(original, tag), tag
    assert cleaned.count('xlink:href="#') == original.count('xlink:href="#')
    if fonttype == "none":
        assert "Growth &amp; &lt;limits&gt;" in cleaned


def test_audio_and_video_keep_their_data_sources() -> None:
    assert re.search(
        r'<source src="data:audio/wav;base64,[A-Za-z0-9+/=]{100,}"', published("IPython Audio")
    )
    assert '<source src="data:video/mp4;base64,AAAAGGZ0eXBtcDQy"' in published("IPython Video")


def test_markdown_keeps_quotes_fences_tables_links_images_and_math() -> None:
    html = published("Markdown")
    assert "<blockquote>" in html
    assert '&lt;script src="app.js"&gt;&lt;/script&gt;' in html  # the fence shows its code
    assert "<td>a</td>" in html
    assert '<a href="https://example.org/docs?a=1&amp;b=2" rel="noopener noreferrer">' in html
    assert '<img src="data:image/png;base64,iVBORw0KGgo=" alt="a dot">' in html
    assert "$x_1 + y^2$" in html
    assert "$$\\int_0^1 x\\,dx = \\frac{1}{2}$$" in html
