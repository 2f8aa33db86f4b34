"""Sections of BENCHMARKS.md that other benchmark scripts own, kept across rewrites.

``python -m benchmarks`` rewrites the whole file; a block between
``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` (written by e.g. ``benchmarks.speed``)
is carried over unchanged, so each script's figures stay those of its own last run.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["blocks_of", "put_block"]

_BLOCK = re.compile(r"<!-- (?P<name>[\w-]+):begin -->\n.*?<!-- (?P=name):end -->\n", re.S)


def blocks_of(text: str) -> str:
    """Every owned block of a document, in order, joined."""
    return "".join(match.group(0) for match in _BLOCK.finditer(text))


def put_block(path: Path, name: str, body: str) -> None:
    """Replace block ``name`` of the file at ``path`` with ``body`` (appended if absent)."""
    block = f"<!-- {name}:begin -->\n{body.rstrip()}\n<!-- {name}:end -->\n"
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(
        rf"<!-- {re.escape(name)}:begin -->\n.*?<!-- {re.escape(name)}:end -->\n", re.S
    )
    if pattern.search(text):
        text = pattern.sub(lambda _match: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)
