"""One remote `Result` -> one MIME bundle ``(data, metadata)`` ready for IPython.

Rules, applied to every representation of the result:

- every key of the kernel's bundle passes through (plotly, vega-lite, ...);
- base64 binaries (``image/*`` except SVG, ``application/pdf``) are validated; strict
  base64 passes as it is, anything looser (whitespace, missing padding) is re-encoded
  canonically; invalid base64 becomes a visible placeholder note;
- ``application/javascript`` is removed unless allowed, its code shown as text;
  HTML and SVG are sanitised (see `markup_sanitiser`), and Markdown is rendered to
  HTML that is sanitised in turn (see `markdown_html`): the bundle then carries that
  HTML and the Markdown source as text, not ``text/markdown``;
- remote widgets (``application/vnd.jupyter.widget-view+json``) are replaced by a
  note: their model lives in the remote kernel, no local frontend can show them;
- anything larger than ``max_bytes`` is truncated (text) or dropped (images, JSON,
  SVG) with a note naming the size and the setting that raises the limit; so is the
  largest representation while the bundle as a whole is over the limit;
- text is redacted; binaries are not scanned;
- the bundle always has ``text/plain``; notes are appended to ``text/plain`` and
  ``text/html`` so that whichever the frontend shows carries them.

Never raises on odd input: junk values are shown as text, and everything returned
is JSON-serialisable.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Mapping
from html import escape
from typing import Any, Final

from sandbox_magic.client import Result, decode_base64
from sandbox_magic.render.carried import VALUE_MIME
from sandbox_magic.render.markdown_html import markdown_to_html
from sandbox_magic.render.markup_sanitiser import (
    CleanMarkup,
    clean_html,
    clean_svg,
    unsanitisable_note,
)
from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.script_report import removed_scripts
from sandbox_magic.render.text import CONFIG_HINT, human_size, limit_note, truncate_utf8, utf8_len
from sandbox_magic.wire import MIME_BY_FIELD

__all__ = [
    "DEFAULT_MAX_OUTPUT_BYTES",
    "JAVASCRIPT_NOTE",
    "WIDGET_NOTE",
    "is_binary_mime",
    "json_safe",
    "note_html",
    "result_bundle",
    "scripts_note",
]

#: Default limit for one representation, one bundle, and each stream of a cell.
DEFAULT_MAX_OUTPUT_BYTES: Final = 10 * 1024 * 1024

JAVASCRIPT_NOTE: Final = (
    "[JavaScript output not executed; enable with %config SandboxMagics.allow_javascript = True]"
)


def scripts_note(mime: str, removed: list[str]) -> str:
    """The note on remote markup whose scripts were removed (charts may need them)."""
    return (
        f"[{mime} from the sandbox: {', '.join(removed)} removed, so parts of it (charts, "
        "maps, widgets) may not work; run them with "
        "%config SandboxMagics.allow_javascript = True]"
    )


WIDGET_NOTE: Final = (
    "[interactive widget not shown: it lives in the remote kernel, "
    "which no local frontend can talk to]"
)

_JS: Final = "application/javascript"
_PLAIN: Final = "text/plain"
_HTML: Final = "text/html"
_SVG: Final = "image/svg+xml"
_WIDGET_TYPES: Final = frozenset(
    {"application/vnd.jupyter.widget-view+json", "application/vnd.jupyter.widget-state+json"}
)
_MARKDOWN: Final = "text/markdown"
#: IPython's repr of a display object, which says less than its Markdown source.
_DEFAULT_REPR: Final = re.compile(r"<[\w.]+ object(?: at 0x[0-9a-fA-F]+)?>")
_SCRIPT_URL: Final = re.compile(r"script\s*:", re.IGNORECASE)
_MAX_DEPTH: Final = 100
#: Tries at cutting HTML so that, closed again, it fits the limit; bytes of slack each.
_MAX_CUTS: Final = 6
_CUT_MARGIN: Final = 64


_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _strict_base64_size(value: str) -> int | None:
    """The decoded size of strict base64 text (alphabet only, padded); None otherwise.

    Checks the text without decoding it (about twice as fast as a strict decode).
    """
    if len(value) % 4 or not value.isascii():
        return None
    data = value.encode("ascii")
    body = data.rstrip(b"=")
    padding = len(data) - len(body)
    if padding > 2 or body.translate(None, _BASE64_ALPHABET):
        return None
    return len(data) // 4 * 3 - padding


def is_binary_mime(mime: str) -> bool:
    """True for types a notebook stores as base64 text: raster images and PDF."""
    return (mime.startswith("image/") and mime != _SVG) or mime == "application/pdf"


def note_html(note: str) -> str:
    """A note as a small, muted HTML paragraph."""
    return (
        f'<p class="sandbox-magic-note" style="opacity:0.75;font-style:italic">{escape(note)}</p>'
    )


def json_safe(value: Any, redactor: Redactor = NO_REDACTION, _depth: int = 0) -> Any:
    """A JSON-serialisable copy of ``value``: odd types become text, strings redacted."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth >= _MAX_DEPTH:
        return "…"
    if isinstance(value, Mapping):
        return {redactor.text(str(k)): json_safe(v, redactor, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item, redactor, _depth + 1) for item in value]
    return redactor.text(_safe_repr(value))


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "".join(value)  # nbformat's multi-line strings
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    try:
        return json.dumps(json_safe(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return _safe_repr(value)


def _raw_items(result: Result) -> list[tuple[str, Any]]:
    data = result.data if isinstance(result.data, Mapping) else {}
    items = {str(k): v for k, v in data.items()}
    for name, mime in MIME_BY_FIELD.items():
        value = getattr(result, name, None)
        if value is not None:
            items[mime] = value
    return list(items.items())


class _Builder:
    """Accumulates the cleaned representations of one bundle and the notes about it."""

    def __init__(self, allow_javascript: bool, max_bytes: int, redactor: Redactor) -> None:
        self.allow_javascript = allow_javascript
        self.max_bytes = max(1, max_bytes)
        self.redactor = redactor
        self.data: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}
        self.notes: list[str] = []
        self.seen: list[str] = []
        #: The bundle's own HTML, which frontends show rather than its Markdown.
        self.has_html = False
        self.markdown_source: str | None = None

    def put(self, mime: str, value: Any, size: int) -> None:
        self.data[mime] = value
        self.sizes[mime] = size

    def add(self, mime: str, value: Any) -> None:
        if mime == VALUE_MIME:
            return  # the value itself, for ``Out[n]``: not a representation to show
        self.seen.append(mime)
        if mime in _WIDGET_TYPES:
            if mime.endswith("view+json"):
                self.notes.append(WIDGET_NOTE)
        elif is_binary_mime(mime):
            self.add_binary(mime, value)
        elif mime == _JS:
            self.add_javascript(value)
        elif mime.startswith("text/") or mime == _SVG or isinstance(value, str):
            self.add_text(mime, _as_text(value))
        else:
            self.add_json(mime, value)

    def add_binary(self, mime: str, value: Any) -> None:
        if isinstance(value, str) and (size := _strict_base64_size(value)) is not None:
            # Strict base64 passes as it is: decoding and re-encoding it would cost
            # two passes over what can be megabytes.
            if size > self.max_bytes:
                self.notes.append(limit_note(mime, size, self.max_bytes, "not shown"))
            else:
                self.put(mime, value, len(value))
            return
        if isinstance(value, bytes | bytearray):
            raw: bytes | None = bytes(value)
        elif isinstance(value, str):
            raw = decode_base64(value)
        else:
            self.notes.append(f"[{mime}: not base64 text ({type(value).__name__}), dropped]")
            return
        if raw is None:
            dropped = human_size(utf8_len(value)) if isinstance(value, str) else "?"
            self.notes.append(f"[{mime}: invalid base64 from the server, {dropped} dropped]")
            return
        if len(raw) > self.max_bytes:
            self.notes.append(limit_note(mime, len(raw), self.max_bytes, "not shown"))
            return
        encoded = base64.b64encode(raw).decode("ascii")
        self.put(mime, encoded, len(encoded))

    def add_javascript(self, value: Any) -> None:
        code = self.redactor.text(_as_text(value))
        if self.allow_javascript:
            if utf8_len(code) > self.max_bytes:
                self.notes.append(limit_note(_JS, utf8_len(code), self.max_bytes, "not run"))
            else:
                self.put(_JS, code, utf8_len(code))
            return
        self.notes.append(JAVASCRIPT_NOTE)
        shown = self.truncated(_PLAIN, code)
        self.put(_PLAIN, shown, utf8_len(shown))

    def add_text(self, mime: str, text: str) -> None:
        if mime == _PLAIN and _PLAIN in self.data:
            return  # already holds blocked JavaScript, which says more than a repr
        text = self.redactor.text(text)
        if not self.allow_javascript and mime == _MARKDOWN:
            self.add_markdown(text)
            return
        if not self.allow_javascript and mime in (_HTML, _SVG):
            cleaned = clean_svg(text) if mime == _SVG else clean_html(text)
            if cleaned.note is not None:
                self.notes.append(cleaned.note)
                if mime == _SVG:
                    return  # escaped text is no image
            elif removed := removed_scripts(text, cleaned.markup):
                self.notes.append(scripts_note(mime, removed))
            text = cleaned.markup
        if not self.allow_javascript and mime == "text/latex" and _SCRIPT_URL.search(text):
            self.notes.append("[text/latex with a script link not rendered]")
            if _PLAIN in self.data:
                return
            mime = _PLAIN
        if mime == _SVG and utf8_len(text) > self.max_bytes:
            self.notes.append(limit_note(mime, utf8_len(text), self.max_bytes, "not shown"))
            return
        text = self.truncated(mime, text)
        self.put(mime, text, utf8_len(text))

    def add_markdown(self, source: str) -> None:
        """Markdown as sanitised HTML, its source kept as the text form."""
        self.markdown_source = source
        if self.has_html:
            return
        try:
            cleaned = clean_html(markdown_to_html(source))
        except Exception as error:  # markdown-it on input it cannot take
            cleaned = CleanMarkup(
                f"<pre>{escape(source)}</pre>", unsanitisable_note(_MARKDOWN, error)
            )
        if cleaned.note is not None:
            self.notes.append(cleaned.note)
        html = self.truncated(_HTML, cleaned.markup)
        self.put(_HTML, html, utf8_len(html))

    def markdown_as_plain(self) -> None:
        source = self.markdown_source
        plain = self.data.get(_PLAIN)
        if source is None or (plain is not None and not _DEFAULT_REPR.fullmatch(plain)):
            return
        text = self.truncated(_PLAIN, source)
        self.sizes[_PLAIN] = utf8_len(text)
        self.data[_PLAIN] = text

    def truncated(self, mime: str, text: str) -> str:
        size = utf8_len(text)
        if size <= self.max_bytes:
            return text
        head = self.html_head(text) if mime == _HTML else truncate_utf8(text, self.max_bytes)
        self.notes.append(limit_note(mime, size - utf8_len(head), self.max_bytes))
        return head

    def html_head(self, html: str) -> str:
        """The head of ``html`` within the limit, never cut inside a tag.

        Unless JavaScript is allowed the head is sanitised again, which closes what
        the cut left open (an ``<svg>``, a ``<style>``): HTML shown after this one,
        as in a composite output, must not be parsed inside it. Closing adds end
        tags, so the cut moves back until the closed head fits.
        """
        limit = self.max_bytes
        head = ""
        for _ in range(_MAX_CUTS):
            head = truncate_utf8(html, limit)
            opened = head.rfind("<")
            if opened > head.rfind(">"):
                head = head[:opened]
            if self.allow_javascript:
                return head
            head = clean_html(head).markup
            excess = utf8_len(head) - self.max_bytes
            if excess <= 0:
                return head
            limit = max(0, limit - excess - _CUT_MARGIN)
        return escape(truncate_utf8(html, self.max_bytes // 6))  # escaping grows text <= 6x

    def add_json(self, mime: str, value: Any) -> None:
        safe = json_safe(value, self.redactor)
        size = utf8_len(json.dumps(safe, ensure_ascii=False))
        if size > self.max_bytes:
            self.notes.append(limit_note(mime, size, self.max_bytes, "not shown"))
            return
        self.put(mime, safe, size)

    def enforce_total(self) -> None:
        total = sum(self.sizes.values())
        for mime in sorted(self.sizes, key=self.sizes.__getitem__, reverse=True):
            if total <= self.max_bytes:
                return
            if mime == _PLAIN:
                continue
            size = self.sizes.pop(mime)
            total -= size
            del self.data[mime]
            self.notes.append(
                f"… {mime} ({human_size(size)}) dropped: "
                f"the output as a whole is over {human_size(self.max_bytes)} ({CONFIG_HINT})"
            )

    def finish(self) -> dict[str, Any]:
        if _PLAIN not in self.data:
            shown = ", ".join(self.seen) if self.seen else "no data"
            self.data[_PLAIN] = f"[remote output: {shown}]"
        if self.notes:
            self.data[_PLAIN] = "\n".join([self.data[_PLAIN], *self.notes])
            if isinstance(self.data.get(_HTML), str):
                self.data[_HTML] += "".join(note_html(note) for note in self.notes)
        return self.data


def _metadata(result: Result, data: Mapping[str, Any], redactor: Redactor) -> dict[str, Any]:
    extra = result.extra if isinstance(result.extra, Mapping) else {}
    given = extra.get("metadata")
    if not isinstance(given, Mapping):
        return {}
    return {
        str(k): json_safe(v, redactor)
        for k, v in given.items()
        if str(k) in data and isinstance(v, Mapping)
    }


def result_bundle(
    result: Result,
    *,
    allow_javascript: bool = False,
    max_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    redactor: Redactor = NO_REDACTION,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole MIME bundle of ``result`` and its metadata, cleaned and bounded.

    See the module docstring for the rules. ``max_bytes`` bounds each representation
    and the bundle as a whole.
    """
    builder = _Builder(allow_javascript, max_bytes, redactor)
    items = _raw_items(result)
    builder.has_html = any(mime == _HTML for mime, _ in items)
    for mime, value in items:
        builder.add(mime, value)
    builder.markdown_as_plain()
    builder.enforce_total()
    data = builder.finish()
    return data, _metadata(result, data, redactor)
