"""What the sanitiser took out of remote markup that could run script, in words.

The sanitiser (`markup_sanitiser`) rebuilds markup from an allow-list and does not
say what it dropped; charts (Altair, Bokeh, folium, …) that need their script then
show nothing. `removed_scripts` compares the markup before and after, so the output
can carry a note saying what was removed and how to allow it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["removed_scripts"]

_ACTIVE_TAGS: Final = ("script", "iframe", "object", "embed")
_HANDLER: Final = re.compile(r"""<[^>]*?\son[a-z]+\s*=""", re.IGNORECASE)


def _count_tags(markup: str, tag: str) -> int:
    return len(re.findall(rf"<\s*{tag}\b", markup, re.IGNORECASE))


def removed_scripts(before: str, after: str) -> list[str]:
    """``["2 <script> elements", "1 event handler (on...)"]``; empty when none were."""
    if "<" not in before:
        return []
    parts: list[str] = []
    for tag in _ACTIVE_TAGS:
        removed = _count_tags(before, tag) - _count_tags(after, tag)
        if removed > 0:
            parts.append(f"{removed} <{tag}> element{'s' if removed > 1 else ''}")
    handlers = len(_HANDLER.findall(before)) - len(_HANDLER.findall(after))
    if handlers > 0:
        parts.append(f"{handlers} event handler{'s' if handlers > 1 else ''} (on...)")
    return parts
