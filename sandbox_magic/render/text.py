"""Small text helpers: human sizes, byte-bounded truncation, ANSI stripping."""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CONFIG_HINT",
    "human_size",
    "limit_note",
    "strip_ansi",
    "truncate_utf8",
    "utf8_len",
]

#: How a user raises the output limit; quoted in every truncation note.
CONFIG_HINT: Final = "%config SandboxMagics.max_output_bytes"

_ANSI: Final = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")


def human_size(size: int) -> str:
    """``532 bytes``, ``1.2 KB``, ``48.0 MB``: binary multiples (1 KB = 1024 bytes)."""
    if size < 1024:
        return f"{size} byte" if size == 1 else f"{size} bytes"
    value = size / 1024
    units = ["KB", "MB", "GB", "TB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def utf8_len(text: str) -> int:
    """Size of ``text`` in UTF-8 bytes, without encoding when it is plainly ASCII-sized."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def truncate_utf8(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` that fits in ``max_bytes`` UTF-8 bytes."""
    if max_bytes <= 0:
        return ""
    if len(text) <= max_bytes // 4 or utf8_len(text) <= max_bytes:
        return text
    if text.isascii():
        return text[:max_bytes]
    return text.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")


def limit_note(what: str, dropped: int, limit: int, verb: str = "truncated") -> str:
    """``… 48.0 MB of text/plain truncated (limit 10.0 MB: %config ...)``."""
    return f"… {human_size(dropped)} of {what} {verb} (limit {human_size(limit)}: {CONFIG_HINT})"


def strip_ansi(text: str) -> str:
    """``text`` without ANSI escape sequences (colours, cursor moves, hyperlinks)."""
    return _ANSI.sub("", text) if "\x1b" in text else text
