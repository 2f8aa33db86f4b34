"""result_bundle: every MIME type, images, JavaScript, limits, redaction, hostile input."""

from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox_magic.client import Result
from sandbox_magic.render.bundle import JAVASCRIPT_NOTE, WIDGET_NOTE, result_bundle
from sandbox_magic.render.redact import Redactor

LIMIT = 10 * 1024 * 1024


def tiny_png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def bundle(result: Result, **kwargs: Any) -> dict[str, Any]:
    kwargs.setdefault("allow_javascript", False)
    kwargs.setdefault("max_bytes", LIMIT)
    kwargs.setdefault("redactor", Redactor())
    return result_bundle(result, **kwargs)[0]


def test_png_stays_base64_and_decodes_to_the_original_bytes() -> None:
    png = tiny_png()
    encoded = base64.b64encode(png).decode()
    data = bundle(Result(png=encoded, text="<Figure>"))
    assert base64.b64decode(data["image/png"]) == png
    assert data["text/plain"] == "<Figure>"


def test_base64_whitespace_and_missing_padding_are_normalised() -> None:
    raw = b"\xff\xd8\xff\xe0 jpeg bytes!"
    encoded = base64.b64encode(raw).decode().rstrip("=")
    wrapped = "\n".join(encoded[i : i + 8] for i in range(0, len(encoded), 8))
    data = bundle(Result(jpeg=wrapped))
    assert data["image/jpeg"] == base64.b64encode(raw).decode()


def test_pdf_passes_as_base64() -> None:
    pdf = b"%PDF-1.4 minimal"
    data = bundle(Result(pdf=base64.b64encode(pdf).decode()))
    assert base64.b64decode(data["application/pdf"]) == pdf


def test_text_types_pass_through() -> None:
    result = Result(
        text="x",
        html="<table><tr><td>1</td></tr></table>",
        latex=r"$\alpha^2$",
        svg='<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect/></svg>',
        json={"a": [1, 2, {"b": None}]},
    )
    data = bundle(result)
    # Serialised as the browser parses it (the same DOM): tbody and end tags made explicit.
    assert data["text/html"] == "<table><tbody><tr><td>1</td></tr></tbody></table>"
    assert data["text/latex"] == result.latex
    assert data["image/svg+xml"] == (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><rect></rect></svg>'
    )
    assert data["application/json"] == {"a": [1, 2, {"b": None}]}


def test_markdown_is_published_as_sanitised_html_with_its_source_as_text() -> None:
    data = bundle(Result(text="<IPython.core.display.Markdown object>", markdown="# Title\n*bold*"))
    assert "text/markdown" not in data
    assert data["text/html"] == "<h1>Title</h1>\n<p><em>bold</em></p>\n"
    assert data["text/plain"] == "# Title\n*bold*"


def test_markdown_next_to_html_leaves_the_html_shown() -> None:
    data = bundle(Result(text="x", html="<b>own</b>", markdown="*other*"))
    assert data["text/html"] == "<b>own</b>"
    assert data["text/plain"] == "x"
    assert "text/markdown" not in data


def test_markdown_passes_as_markdown_when_javascript_is_allowed() -> None:
    data = bundle(Result(markdown="*m*"), allow_javascript=True)
    assert data["text/markdown"] == "*m*"


def test_every_data_key_passes_through_plotly_and_vega() -> None:
    plotly = {"data": [{"type": "bar", "y": [1, 2]}], "layout": {}}
    vega = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", "mark": "bar"}
    result = Result(
        data={
            "application/vnd.plotly.v1+json": plotly,
            "application/vnd.vegalite.v5+json": vega,
            "text/plain": "Figure()",
            "application/x-custom": "custom text",
        }
    )
    data = bundle(result)
    assert data["application/vnd.plotly.v1+json"] == plotly
    assert data["application/vnd.vegalite.v5+json"] == vega
    assert data["application/x-custom"] == "custom text"
    assert data["text/plain"] == "Figure()"


def test_named_fields_win_over_data() -> None:
    data = bundle(Result(text="field", data={"text/plain": "data"}))
    assert data["text/plain"] == "field"


def test_javascript_is_shown_as_text_with_a_note_unless_allowed() -> None:
    result = Result(javascript="alert('hi')", text="<IPython.core.display.Javascript object>")
    blocked = bundle(result)
    assert "application/javascript" not in blocked
    assert "alert('hi')" in blocked["text/plain"]
    assert JAVASCRIPT_NOTE in blocked["text/plain"]
    assert "%config SandboxMagics.allow_javascript = True" in JAVASCRIPT_NOTE
    allowed = bundle(result, allow_javascript=True)
    assert allowed["application/javascript"] == "alert('hi')"


def test_script_in_html_is_removed_unless_javascript_is_allowed() -> None:
    html = (
        '<div onclick="steal()">table</div><script>steal()</script>'
        '<a href=" jav&#x61;script:steal()">x</a><img src="x" onerror="steal()">'
        '<iframe srcdoc="<script>steal()</script>"></iframe><style>td > b {color: red}</style>'
    )
    safe = bundle(Result(html=html))["text/html"]
    assert "steal" not in safe
    assert "<div>table</div>" in safe
    assert "td > b {color: red}" in safe  # CSS untouched
    assert bundle(Result(html=html), allow_javascript=True)["text/html"] == html


def test_svg_event_handlers_are_removed() -> None:
    svg = '<svg onload="steal()"><circle r="1"/><script>steal()</script></svg>'
    assert "steal" not in bundle(Result(svg=svg))["image/svg+xml"]


def test_svg_style_cannot_smuggle_markup() -> None:
    svg = '<svg><style><img src=x onerror="steal()"></style><set attributeName="x"/></svg>'
    out = bundle(Result(svg=svg))["image/svg+xml"]
    # An HTML parser (as the browser's) ends the SVG at <img>: the handler is gone.
    assert "steal" not in out
    assert "onerror" not in out
    assert "<set" not in out


def test_markdown_with_script_is_made_inert() -> None:
    data = bundle(Result(markdown="hello <script>steal()</script> [x](javascript:steal())"))
    assert "<script" not in data["text/html"]
    assert "javascript:" not in data["text/html"].replace("[x](javascript:steal())", "")


def test_invalid_base64_becomes_a_visible_placeholder() -> None:
    data = bundle(Result(png="not*base64!" * 10, text="<Figure>"))
    assert "image/png" not in data
    assert "[image/png: invalid base64 from the server, 110 bytes dropped]" in data["text/plain"]


def test_placeholder_also_shows_in_html_when_html_is_the_shown_form() -> None:
    data = bundle(Result(html="<b>chart</b>", jpeg="%%%"))
    assert "invalid base64" in data["text/html"]


def test_non_string_image_is_a_placeholder_not_a_crash() -> None:
    data = bundle(Result(data={"image/png": 12345}))
    assert "image/png" not in data
    assert "not base64 text (int)" in data["text/plain"]


def test_long_text_is_truncated_with_a_note_naming_sizes() -> None:
    text = "x" * 5000
    data = bundle(Result(text=text), max_bytes=1024)
    plain = data["text/plain"]
    assert plain.startswith("x" * 1024)
    assert (
        "… 3.9 KB of text/plain truncated (limit 1.0 KB: %config SandboxMagics.max_output_bytes)"
        in plain
    )


def test_truncated_html_is_never_cut_inside_a_tag() -> None:
    html = "<table>" + '<tr><td class="cell">value</td></tr>' * 200 + "</table>"
    data = bundle(Result(html=html), max_bytes=1000)
    body = data["text/html"].split('<p class="sandbox-magic-note"')[0]
    assert body.endswith(">")
    assert "of text/html truncated" in data["text/html"]


def test_image_over_the_limit_is_replaced_by_a_note() -> None:
    raw = bytes(range(256)) * 20
    data = bundle(Result(png=base64.b64encode(raw).decode()), max_bytes=1024)
    assert "image/png" not in data
    assert "… 5.0 KB of image/png not shown (limit 1.0 KB" in data["text/plain"]


def test_json_over_the_limit_is_dropped_with_a_note() -> None:
    data = bundle(
        Result(data={"application/vnd.plotly.v1+json": {"y": list(range(2000))}}), max_bytes=1024
    )
    assert "application/vnd.plotly.v1+json" not in data
    assert "of application/vnd.plotly.v1+json not shown" in data["text/plain"]


def test_bundle_over_the_total_limit_drops_its_largest_part() -> None:
    result = Result(text="t" * 100, html="h" * 700, latex="m" * 600)
    data = bundle(result, max_bytes=1024)
    assert "text/html" not in data
    assert data["text/latex"] == "m" * 600
    assert "text/html (700 bytes) dropped" in data["text/plain"]


def test_remote_widget_becomes_a_note() -> None:
    result = Result(
        text="IntSlider(value=0)",
        data={"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2}},
    )
    data = bundle(result)
    assert "application/vnd.jupyter.widget-view+json" not in data
    assert WIDGET_NOTE in data["text/plain"]


def test_bundle_without_displayable_data_falls_back_to_text() -> None:
    assert bundle(Result())["text/plain"] == "[remote output: no data]"
    data = bundle(Result(data={"application/x-thing+json": {"a": 1}}))
    assert data["text/plain"] == "[remote output: application/x-thing+json]"


def test_secrets_are_redacted_in_text_html_and_json() -> None:
    secret = "sk-live-1234567890"
    result = Result(
        text=f"key={secret}",
        html=f"<b>{secret}</b>",
        json={"nested": [f"x{secret}y"], secret: 1},
    )
    data = bundle(result, redactor=Redactor([secret]))
    assert secret not in json.dumps(data)
    assert data["text/plain"] == "key=[redacted]"
    assert data["application/json"] == {"nested": ["x[redacted]y"], "[redacted]": 1}


def test_image_metadata_from_the_server_is_kept() -> None:
    png = base64.b64encode(tiny_png()).decode()
    result = Result.from_json({"png": png, "metadata": {"image/png": {"width": 320}, "other": 1}})
    data, metadata = result_bundle(
        result, allow_javascript=False, max_bytes=LIMIT, redactor=Redactor()
    )
    assert "image/png" in data
    assert metadata == {"image/png": {"width": 320}}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)
junk = (
    json_values
    | st.binary(max_size=40)
    | st.sets(st.integers(), max_size=3)
    | st.tuples(st.integers(), st.text(max_size=5))
    | st.builds(object)
    | st.complex_numbers()
)
mime_keys = st.sampled_from(
    [
        "text/plain",
        "text/html",
        "image/png",
        "image/jpeg",
        "image/svg+xml",
        "application/pdf",
        "application/json",
        "application/javascript",
        "application/vnd.plotly.v1+json",
        "application/vnd.jupyter.widget-view+json",
        "text/latex",
    ]
) | st.text(max_size=15)
maybe_text = (
    st.none() | st.text(max_size=60) | st.sampled_from(["aGVsbG8=", "***", "<script>x</script>"])
)


@settings(max_examples=300, deadline=None)
@given(
    text=maybe_text,
    html=maybe_text,
    png=maybe_text,
    svg=maybe_text,
    javascript=maybe_text,
    json_value=junk,
    data=st.dictionaries(mime_keys, junk, max_size=6),
    extra=st.dictionaries(st.sampled_from(["metadata", "x"]), junk, max_size=2),
    allow_javascript=st.booleans(),
    max_bytes=st.integers(min_value=-5, max_value=400),
    secrets=st.lists(st.text(min_size=1, max_size=8), max_size=3),
)
def test_result_bundle_never_raises_and_is_json_serialisable(
    text: str | None,
    html: str | None,
    png: str | None,
    svg: str | None,
    javascript: str | None,
    json_value: Any,
    data: dict[str, Any],
    extra: dict[str, Any],
    allow_javascript: bool,
    max_bytes: int,
    secrets: list[str],
) -> None:
    result = Result(
        text=text,
        html=html,
        png=png,
        svg=svg,
        javascript=javascript,
        json=json_value,
        data=data,
        extra=extra,
        is_main_result=True,
    )
    out, metadata = result_bundle(
        result,
        allow_javascript=allow_javascript,
        max_bytes=max_bytes,
        redactor=Redactor(secrets),
    )
    assert isinstance(out, dict)
    assert isinstance(out["text/plain"], str)
    json.dumps(out, allow_nan=False)
    json.dumps(metadata, allow_nan=False)
    if not allow_javascript:
        assert "application/javascript" not in out
