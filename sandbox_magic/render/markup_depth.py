"""How deeply markup nests its elements, estimated in one linear pass.

Why: the HTML5 tree builder checks element scope by walking the stack of open
elements, so deeply nested markup costs time quadratic in its depth (100,000
nested ``<div>`` keep html5ever busy for minutes). Browsers cap the depth (Chromium
at 512), so such markup shows nothing a reader needs; the sanitiser refuses it
before parsing. This is a resource guard, not a safety check: an estimate that is
wrong in either direction can only make markup show as text or take longer.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_NESTING", "nesting_depth"]


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Deeper markup is shown as text (a browser flattens it past 512 anyway).
MAX_NESTING: Final = 256

_TAG: Final = re.compile(r"<(/?)([a-zA-Z][^\s/>]*)([^>]*)>")
_RAW_TEXT: Final = frozenset({"script", "style"})  # their text is code, not markup

# Never on the stack: void elements, and elements a later sibling closes implicitly.
_NOT_NESTING: Final = _names(
    """area base br col embed hr img input link meta param source track wbr image
    p li dt dd tr td th thead tbody tfoot colgroup option optgroup rb rt rtc rp"""
)
# HTML elements that "/>" does not close (only foreign elements self-close).
_HTML_BLOCKS: Final = _names(
    """div section article aside nav header footer main blockquote ul ol dl table
    span b i a em strong pre figure details summary center address fieldset"""
)


def nesting_depth(markup: str, stop_at: int = MAX_NESTING) -> int:
    """The largest number of elements open at once (approximately), counted up to
    ``stop_at`` + 1."""
    stack: list[str] = []
    open_counts: dict[str, int] = {}
    deepest = 0
    lowered = markup.lower()
    position = 0
    while (match := _TAG.search(markup, position)) is not None:
        position = match.end()
        closing, name, rest = match.group(1), match.group(2).lower(), match.group(3)
        if name in _RAW_TEXT and not closing:
            end = lowered.find("</" + name, position)
            position = len(markup) if end < 0 else end
            continue
        if name in _NOT_NESTING:
            continue
        if closing:
            if open_counts.get(name):
                while stack:  # pop until the element of that name (amortised linear)
                    popped = stack.pop()
                    open_counts[popped] -= 1
                    if popped == name:
                        break
            continue
        if rest.endswith("/") and name not in _HTML_BLOCKS:
            continue
        stack.append(name)
        open_counts[name] = open_counts.get(name, 0) + 1
        deepest = max(deepest, len(stack))
        if deepest > stop_at:
            break
    return deepest
