"""Remote HTML and SVG, rebuilt from an allow-list so that nothing in them runs script.

Why: JupyterLab trusts what a running kernel publishes, so remote ``text/html`` and
``image/svg+xml`` would run their script in the notebook's page, with its access
to the user's Jupyter server. Sandbox code is exactly the code not to trust.

How: `nh3` (the Python binding to Rust's ammonia) parses the markup with html5ever,
the same HTML5 algorithm a browser runs, and serialises only what
`markup_policy` allows; every URL also passes `markup_policy.url_is_safe`.
Parsing the way the browser will is what keeps parser-differential tricks out;
the allow-list keeps out whatever a deny-list would forget.

Never raises: markup that cannot be sanitised, or that nests so deeply that
parsing it would take minutes (see `markup_depth`), comes back as escaped text
with a note saying so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from html import escape
from typing import Final

import nh3

from sandbox_magic.render.markup_depth import MAX_NESTING, nesting_depth
from sandbox_magic.render.markup_policy import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    CONTENT_DROPPED_TAGS,
    URL_ATTRIBUTES,
    url_is_safe,
)

__all__ = ["CleanMarkup", "clean_html", "clean_svg", "unsanitisable_note"]


@dataclass(frozen=True)
class CleanMarkup:
    """Sanitised markup, and a note for the reader when the input had to be shown as text."""

    markup: str
    note: str | None = None


def unsanitisable_note(mime: str, error: BaseException) -> str:
    return f"[{mime} could not be sanitised ({type(error).__name__}); shown as text]"


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    if attribute in URL_ATTRIBUTES and not url_is_safe(tag, attribute, value):
        return None
    return value


@functools.cache
def _cleaner() -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(CONTENT_DROPPED_TAGS),
        attributes={"*": set(ALLOWED_ATTRIBUTES)},
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto", "data"},
        strip_comments=True,
    )


_XML_SAFE_ENTITIES: Final = (("&nbsp;", "&#160;"),)


def _clean(markup: str, mime: str) -> CleanMarkup:
    if "<" not in markup:
        return CleanMarkup(markup)  # no element at all: text stays text
    if nesting_depth(markup) > MAX_NESTING:
        note = f"[{mime} nests elements more than {MAX_NESTING} deep; shown as text]"
        return CleanMarkup(f"<pre>{escape(markup)}</pre>", note=note)
    try:
        return CleanMarkup(_cleaner().clean(markup))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # nh3 reports Rust panics as BaseException
        return CleanMarkup(f"<pre>{escape(markup)}</pre>", note=unsanitisable_note(mime, error))


def clean_html(markup: str) -> CleanMarkup:
    """``markup`` (an HTML fragment) with everything that could run script removed."""
    return _clean(markup, "text/html")


def clean_svg(markup: str) -> CleanMarkup:
    """An SVG document, sanitised like HTML and kept well-formed XML.

    JupyterLab shows ``image/svg+xml`` through an ``<img>`` (parsed as XML), other
    frontends inline it into the page (parsed as HTML); the result suits both.
    """
    cleaned = _clean(markup, "image/svg+xml")
    if cleaned.note is not None:
        return cleaned
    svg = cleaned.markup.strip()
    for entity, reference in _XML_SAFE_ENTITIES:
        svg = svg.replace(entity, reference)
    return CleanMarkup(svg)
