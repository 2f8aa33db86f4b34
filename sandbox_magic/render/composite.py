"""Many outputs -> ONE ``text/plain`` + ``text/html`` bundle.

Used for background runs: a single display handle is updated in place when the
run ends, so everything the run printed and displayed must fit in one output.
Each result goes through `result_bundle` first (same limits, redaction and
JavaScript rules), then its richest static form is chosen for HTML: HTML as is,
SVG inline, raster images as ``<img src="data:...">``, anything else (Markdown,
LaTeX, JSON, plain text) as escaped text. Streams become ``<pre>`` blocks (ANSI
codes kept in ``text/plain``, removed from HTML). The whole is bounded by
``max_bytes``; what does not fit is counted in a final note.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import Any, Final

from sandbox_magic.client import ExecutionError, Result
from sandbox_magic.render.bundle import DEFAULT_MAX_OUTPUT_BYTES, note_html, result_bundle
from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.text import CONFIG_HINT, human_size, strip_ansi, utf8_len

__all__ = ["as_stream", "composite_bundle"]

_IMG_TYPES: Final = ("image/png", "image/jpeg", "image/gif", "image/webp")
_PRE: Final = (
    '<pre class="sandbox-magic-{name}" style="margin:2px 0;padding:2px 4px;'
    'white-space:pre-wrap{extra}">{text}</pre>'
)
_RED: Final = ";background:rgba(255,0,0,0.07)"


def as_stream(item: object) -> tuple[str, str] | None:
    """``(name, text)`` when ``item`` is a stream chunk (object or pair), else None."""
    if isinstance(item, Result):
        return None
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(x, str) for x in item):
        return item[0], item[1]
    name, text = getattr(item, "name", None), getattr(item, "text", None)
    if isinstance(name, str) and isinstance(text, str):
        return name, text
    return None


def _pre(name: str, text: str) -> str:
    extra = _RED if name in ("stderr", "error") else ""
    return _PRE.format(name=name, extra=extra, text=escape(strip_ansi(text), quote=False))


def _result_html(data: dict[str, Any]) -> str:
    if isinstance(html := data.get("text/html"), str):
        return f'<div class="sandbox-magic-result">{html}</div>'
    if isinstance(svg := data.get("image/svg+xml"), str):
        return f'<div class="sandbox-magic-result">{svg}</div>'
    for mime in _IMG_TYPES:
        if isinstance(encoded := data.get(mime), str):
            return f'<img src="data:{mime};base64,{encoded}" style="max-width:100%">'
    for mime in ("text/markdown", "text/latex"):
        if isinstance(text := data.get(mime), str):
            return _pre("result", text)
    for mime, value in data.items():
        if mime.endswith("json"):
            return _pre("result", json.dumps(value, indent=2, ensure_ascii=False))
    return _pre("result", str(data.get("text/plain", "")))


class _Composer:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(1, max_bytes)
        self.plain: list[str] = []
        self.html: list[str] = []
        self.used = 0
        self.skipped = 0
        self.skipped_bytes = 0

    def add(self, plain: str, html: str) -> None:
        size = utf8_len(plain) + utf8_len(html)
        if self.skipped or self.used + size > self.max_bytes:
            self.skipped += 1
            self.skipped_bytes += size
            return
        self.used += size
        self.plain.append(plain)
        self.html.append(html)

    def bundle(self, summary: str | None) -> dict[str, str]:
        if self.skipped:
            note = (
                f"… {self.skipped} more output(s), {human_size(self.skipped_bytes)}, not shown "
                f"(limit {human_size(self.max_bytes)}: {CONFIG_HINT})"
            )
            self.plain.append(note)
            self.html.append(note_html(note))
        if summary:
            self.plain.append(summary)
            self.html.append(note_html(summary))
        return {
            "text/plain": "\n".join(p.rstrip("\n") for p in self.plain),
            "text/html": '<div class="sandbox-magic-composite">' + "".join(self.html) + "</div>",
        }


def _merged(outputs: Iterable[object]) -> Iterable[tuple[str, str] | Result]:
    """Consecutive chunks of one stream joined, so each becomes one ``<pre>``."""
    pending: tuple[str, str] | None = None
    for item in outputs:
        stream = as_stream(item)
        if stream is not None and pending is not None and stream[0] == pending[0]:
            pending = (pending[0], pending[1] + stream[1])
            continue
        if pending is not None:
            yield pending
            pending = None
        if stream is not None:
            pending = stream
        elif isinstance(item, Result):
            yield item
    if pending is not None:
        yield pending


def composite_bundle(
    outputs: Iterable[object],
    *,
    allow_javascript: bool = False,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    redactor: Redactor = NO_REDACTION,
    error: ExecutionError | None = None,
    summary: str | None = None,
) -> dict[str, str]:
    """Render streams and results (in order), then ``error`` and ``summary``, as one bundle.

    ``outputs`` holds `Result` objects and stream chunks (``StreamChunk`` or
    ``(name, text)``); anything else is skipped.
    """
    composer = _Composer(max_bytes)
    for item in _merged(outputs):
        if isinstance(item, Result):
            data, _ = result_bundle(
                item, allow_javascript=allow_javascript, max_bytes=max_bytes, redactor=redactor
            )
            composer.add(str(data.get("text/plain", "")), _result_html(data))
        else:
            name, text = item[0], redactor.text(item[1])
            composer.add(text, _pre(name, text))
    if error is not None:
        lines = [redactor.text(str(line)) for line in error.traceback] or [
            redactor.text(f"{error.name}: {error.value}")
        ]
        text = "\n".join(lines)
        composer.add(text, _pre("error", text))
    return composer.bundle(redactor.text(summary) if summary else None)
