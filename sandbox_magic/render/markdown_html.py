"""Remote Markdown rendered to HTML here, so that the HTML can be sanitised as it will be shown.

Sanitising Markdown *source* cannot work: the frontend's Markdown renderer decides
what is raw HTML, and it does not agree with any HTML parser (``<b <script>`` is
an attribute to one and a tag to the other). So remote ``text/markdown`` is
rendered here (markdown-it-py: CommonMark with tables and strikethrough) and the
bridge publishes the sanitised HTML instead, the same in JupyterLab, Notebook 7
and nbconvert.

Math stays as its ``$...$`` / ``$$...$$`` source text (escaped), which the
frontend's MathJax typesets in HTML outputs, as it would in Markdown.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from html import escape
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from mdit_py_plugins.dollarmath import dollarmath_plugin

__all__ = ["markdown_to_html"]


def _math(open_: str, close: str, block: bool = False) -> Any:
    def render(self: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
        text = escape(f"{open_}{tokens[idx].content}{close}", quote=False)
        return f'<div class="math">{text}</div>\n' if block else text

    return render


@functools.cache
def _markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    md.use(dollarmath_plugin, double_inline=True)
    md.add_render_rule("math_inline", _math("$", "$"))
    md.add_render_rule("math_inline_double", _math("$$", "$$"))
    md.add_render_rule("math_block", _math("$$", "$$", block=True))
    md.add_render_rule("math_block_label", _math("$$", "$$", block=True))
    return md


def markdown_to_html(source: str) -> str:
    """``source`` rendered to HTML, raw HTML in it included (sanitise the result)."""
    html: str = _markdown().render(source)
    return html
