"""composite_bundle: a whole run in one text/plain + text/html output."""

from __future__ import annotations

import base64

from sandbox_magic.client import ExecutionError, Result, StreamChunk
from sandbox_magic.render.composite import composite_bundle
from sandbox_magic.render.redact import Redactor


def test_composite_renders_streams_and_results_in_order() -> None:
    png = base64.b64encode(b"\x89PNG data").decode()
    outputs = [
        StreamChunk("stdout", "\x1b[32mline 1\x1b[0m\n"),
        StreamChunk("stdout", "line 2 <tag>\n"),
        Result(text="<Figure>", png=png),
        Result(html="<table><tr><td>7</td></tr></table>", text="df"),
        Result(svg='<svg viewBox="0 0 1 1"><rect/></svg>'),
        Result(latex=r"$x<1$", text="x"),
        Result(markdown="**bold** & <b>", text="md"),
        Result(json={"k": [1]}),
        StreamChunk("stderr", "oops\n"),
    ]
    bundle = composite_bundle(outputs, summary="✓ succeeded in 1.00 s · run run_1")
    assert set(bundle) == {"text/plain", "text/html"}
    html = bundle["text/html"]
    assert html.count('<pre class="sandbox-magic-stdout"') == 1  # chunks merged
    assert "line 1\nline 2 &lt;tag&gt;" in html  # ANSI stripped, escaped
    assert f'<img src="data:image/png;base64,{png}"' in html
    assert "<table><tbody><tr><td>7</td></tr></tbody></table>" in html
    assert '<svg viewBox="0 0 1 1"><rect></rect></svg>' in html
    assert "$x&lt;1$" in html
    assert "<strong>bold</strong> &amp; <b>" in html  # Markdown shown rendered (sanitised)
    assert '"k": [' in html
    assert 'class="sandbox-magic-stderr"' in html
    order = [
        html.index(s) for s in ("line 1", "data:image/png", "<table>", "<svg", "oops", "run_1")
    ]
    assert order == sorted(order)
    plain = bundle["text/plain"]
    assert plain.startswith("\x1b[32mline 1\x1b[0m\nline 2 <tag>\n<Figure>\ndf")
    assert plain.endswith("✓ succeeded in 1.00 s · run run_1")


def test_composite_includes_the_error_and_redacts() -> None:
    secret = "hunter22secret"
    bundle = composite_bundle(
        [StreamChunk("stdout", f"pw={secret}\n"), Result(html=f"<i>{secret}</i>")],
        error=ExecutionError("ValueError", "bad", (f"\x1b[31mValueError\x1b[0m: {secret}",)),
        redactor=Redactor([secret]),
    )
    assert secret not in str(bundle)
    assert "ValueError: [redacted]" in bundle["text/html"]
    assert "\x1b[31mValueError" in bundle["text/plain"]


def test_composite_blocks_scripts_unless_allowed() -> None:
    outputs = [Result(html="<b>x</b><script>steal()</script>"), Result(javascript="steal()")]
    blocked = composite_bundle(outputs)["text/html"]
    assert "<script>" not in blocked
    assert "JavaScript output not executed" in blocked


def test_composite_is_bounded_and_says_what_it_left_out() -> None:
    outputs = [StreamChunk("stdout", "a" * 600), Result(text="b" * 600), Result(text="c" * 600)]
    bundle = composite_bundle(outputs, max_bytes=2000)
    assert "b" * 600 not in bundle["text/plain"]
    assert "… 2 more output(s)" in bundle["text/plain"]
    assert "%config SandboxMagics.max_output_bytes" in bundle["text/html"]


def test_composite_of_nothing_is_an_empty_but_valid_bundle() -> None:
    assert composite_bundle([]) == {
        "text/plain": "",
        "text/html": '<div class="sandbox-magic-composite"></div>',
    }
