"""Keep remote HTML and SVG from running JavaScript in the notebook page.

Why this exists: JupyterLab sanitises *untrusted* outputs (a notebook opened from
elsewhere), but outputs produced by the running kernel are trusted: their
``<script>`` tags run and their event handlers fire, with the page's access to the
Jupyter server. Code in a sandbox is exactly the code one does not want to trust,
so unless ``allow_javascript`` is on, the bridge passes remote ``text/html`` and
``image/svg+xml`` through `sanitize_markup` first.

How: a cheap gate (`looks_active`) lets ordinary markup (pandas tables,
matplotlib SVG) through byte for byte. Markup that might be active is rebuilt by a
streaming parser that drops script-capable elements with their content, event
handler attributes, ``srcdoc``, and attributes whose value holds a
``javascript:``/``vbscript:`` URL or a ``data:`` URL other than an image (or, on
``<audio>``, ``<video>`` and ``<source>``, sound or video). `sanitize_with_report`
also says what it removed, so the output can carry a visible note. Text stays text,
``<style>`` stays (CSS cannot run script in current browsers).
Rebuilt markup has lower-cased tag and attribute names, which HTML parsing (how
the frontend inserts trusted output) undoes for inline SVG.
"""

from __future__ import annotations

import html
import re
import urllib.parse
from html import escape
from html.parser import HTMLParser
from typing import Final

__all__ = ["looks_active", "sanitize_markdown", "sanitize_markup", "sanitize_with_report"]

_ACTIVE: Final = re.compile(
    r"<\s*/?\s*(?:script|iframe|frame|object|embed|applet|portal|meta|base|link|form"
    r"|foreignobject|animate|set|handler|listener|use|template|noscript|math)\b"
    r"|\bon[a-z]+\s*="
    r"|script\s*:"
    r"|data\s*:"
    r"|srcdoc"
    r"|&(?:#|[a-z]+;)"
    r"|expression\s*\(",
    re.IGNORECASE,
)

# Elements dropped together with everything inside them.
_DROP_WITH_CONTENT: Final = frozenset(
    {
        "script",
        "iframe",
        "frame",
        "frameset",
        "object",
        "embed",
        "applet",
        "portal",
        "noscript",
        "noembed",
        "noframes",
        "template",
        "handler",
        "listener",
    }
)
# Elements dropped alone (their content, if any, is kept and sanitised).
_DROP_TAG: Final = frozenset(
    {
        "meta",
        "base",
        "link",
        "animate",
        "animatemotion",
        "animatetransform",
        "set",
        "use",
        "param",
        "form",
    }
)
_VOID: Final = frozenset(
    {"area", "br", "col", "embed", "hr", "img", "input", "source", "track", "wbr", "image"}
)
_SAFE_DATA_URL: Final = re.compile(r"data:image/(?:png|jpe?g|gif|webp|bmp);", re.IGNORECASE)
#: Sound and video that ``<audio>``/``<video>``/``<source>`` may play from a data URL
#: (IPython's ``Audio`` and ``Video`` embed their media this way).
_SAFE_MEDIA_URL: Final = re.compile(
    r"data:(?:audio/(?:wav|x-wav|wave|mpeg|mp3|mp4|ogg|webm|flac|aac|x-m4a)"
    r"|video/(?:mp4|webm|ogg));",
    re.IGNORECASE,
)
_MEDIA_TAGS: Final = frozenset({"audio", "video", "source"})
_INVISIBLE: Final = re.compile(r"[\x00-\x20\x7f]+")


def looks_active(markup: str) -> bool:
    """True when ``markup`` might carry script; False means it is certainly inert."""
    return _ACTIVE.search(markup) is not None


def sanitize_markup(markup: str) -> str:
    """``markup`` unchanged when inert, else rebuilt without anything that runs script."""
    return sanitize_with_report(markup)[0]


def sanitize_with_report(markup: str) -> tuple[str, list[str]]:
    """`sanitize_markup`, and what it removed that could run script, in words.

    The list names removed elements (``2 <script> elements``) and event handlers; it is
    empty when nothing active was found.
    """
    if not looks_active(markup):
        return markup, []
    parser = _Sanitizer()
    parser.feed(markup)
    parser.close()
    return "".join(parser.out), parser.report()


#: Where Markdown puts a link's destination: ``[text](dest)``, ``![alt](dest)``,
#: ``[label]: dest`` and ``<dest>`` (autolinks).
_MARKDOWN_LINK: Final = re.compile(
    r"(\]\(\s*<?|^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?|<)([^\s)>]+)", re.MULTILINE
)


def sanitize_markdown(text: str) -> str:
    """Markdown with its inline HTML sanitised and script links pointed nowhere.

    A Markdown renderer turns ``[x](javascript:...)`` into a live link, entities and
    percent-escapes decoded; such destinations become ``#blocked``.
    """
    text = sanitize_markup(text)

    def neutral(match: re.Match[str]) -> str:
        target = html.unescape(urllib.parse.unquote(match.group(2)))
        if _attribute_is_safe("href", target):
            return match.group(0)
        return match.group(1) + "#blocked"

    return _MARKDOWN_LINK.sub(neutral, text)


def _attribute_is_safe(name: str, value: str | None, tag: str = "") -> bool:
    if name.startswith("on") or name in ("srcdoc", "formaction", "action"):
        return False
    if value is None:
        return True
    compact = _INVISIBLE.sub("", value).lower()
    if "script:" in compact or "expression(" in compact:
        return False
    if "data:" in compact:
        if tag in _MEDIA_TAGS and name == "src" and _SAFE_MEDIA_URL.match(compact):
            return True
        if tag == "video" and name == "poster":
            return _SAFE_DATA_URL.match(compact) is not None
        return name in ("src", "href", "xlink:href") and _SAFE_DATA_URL.match(compact) is not None
    return True


class _Sanitizer(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping: list[str] = []
        self._in_style = False
        self.removed: dict[str, int] = {}
        self.handlers = 0

    def report(self) -> list[str]:
        parts = [
            f"{count} <{tag}> element{'s' if count > 1 else ''}"
            for tag, count in self.removed.items()
        ]
        if self.handlers:
            parts.append(f"{self.handlers} event handler{'s' if self.handlers > 1 else ''} (on...)")
        return parts

    def _drop(self, tag: str) -> None:
        if tag in _DROP_WITH_CONTENT:
            self.removed[tag] = self.removed.get(tag, 0) + 1

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: str) -> str:
        parts = [tag]
        for name, value in attrs:
            if _attribute_is_safe(name, value, tag):
                parts.append(name if value is None else f'{name}="{escape(value, quote=True)}"')
            elif name.startswith("on"):
                self.handlers += 1
        return "<" + " ".join(parts) + close

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.append(tag)
            return
        if tag in _DROP_WITH_CONTENT:
            self._drop(tag)
            if tag not in _VOID:
                self._skipping.append(tag)
            return
        if tag in _DROP_TAG:
            return
        self._in_style = tag == "style"
        self.out.append(self._tag(tag, attrs, ">"))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping or tag in _DROP_WITH_CONTENT or tag in _DROP_TAG:
            if not self._skipping:
                self._drop(tag)
            return
        self.out.append(self._tag(tag, attrs, "/>"))

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[-1]:
                self._skipping.pop()
            return
        if tag in _DROP_WITH_CONTENT or tag in _DROP_TAG:
            return
        self._in_style = False
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_style:
            # Raw text in HTML, but parsed as markup inside SVG: no "<" may survive.
            self.out.append(data.replace("<", "\\3c "))
        else:
            self.out.append(escape(data, quote=False))

    # Comments, doctypes, processing instructions and CDATA sections are dropped.
    def handle_comment(self, data: str) -> None:
        return

    def handle_decl(self, decl: str) -> None:
        return

    def handle_pi(self, data: str) -> None:
        return

    def unknown_decl(self, data: str) -> None:
        return
