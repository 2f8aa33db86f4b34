"""Redaction of secret values from everything the notebook shows.

`Redactor` replaces each secret value (the API key, ``--secret-env`` values) with
``[redacted]`` in text and, recursively, in JSON-like structures. Secrets shorter
than `MIN_SECRET_LENGTH` characters are ignored: redacting ``"1"`` or ``"abc"``
would mangle ordinary output without protecting anything.

What is *not* scanned: base64 binary payloads (PNG, JPEG, PDF). A secret drawn
into an image, or encoded inside a binary file, cannot be found by text matching.

A redactor without secrets is a no-op that costs one attribute check per call.
Its ``repr`` names how many secrets it holds, never the values.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, TypeVar

__all__ = ["MIN_SECRET_LENGTH", "NO_REDACTION", "REDACTED", "Redactor"]

#: What replaces every occurrence of a secret.
REDACTED: Final = "[redacted]"

#: Secrets shorter than this are not redacted (too likely to match ordinary text).
MIN_SECRET_LENGTH: Final = 4

_R = TypeVar("_R")


class Redactor:
    """Replaces secret values with ``[redacted]``; longest secrets match first."""

    __slots__ = ("_first_chars", "_longest", "_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        self._secrets: tuple[str, ...] = tuple(sorted(kept, key=lambda s: (-len(s), s)))
        self._pattern: re.Pattern[str] | None = (
            re.compile("|".join(re.escape(s) for s in self._secrets)) if self._secrets else None
        )
        self._longest = len(self._secrets[0]) if self._secrets else 0
        self._first_chars = frozenset(s[0] for s in self._secrets)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"

    @property
    def active(self) -> bool:
        """True when there is at least one secret to redact."""
        return self._pattern is not None

    def text(self, value: str) -> str:
        """``value`` with every secret replaced."""
        if self._pattern is None or not value:
            return value
        return self._pattern.sub(REDACTED, value)

    def value(self, value: Any) -> Any:
        """Redact strings inside dicts, lists and tuples (keys too); other values unchanged."""
        if self._pattern is None:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {
                (self.text(k) if isinstance(k, str) else k): self._walk(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._walk(item) for item in value]
        return value

    def record(self, value: _R) -> _R:
        """A copy of a frozen dataclass record (such as a `Run`) with every string redacted.

        Nested records, tuples, lists and dicts are copied the same way; the type of
        each is kept, so a redacted `Run` is still a `Run`.
        """
        if self._pattern is None:
            return value
        redacted: _R = self._copy(value)
        return redacted

    def _copy(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes = {
                f.name: self._copy(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init
            }
            return dataclasses.replace(value, **changes)
        if isinstance(value, tuple):
            return tuple(self._copy(item) for item in value)
        if isinstance(value, list):
            return [self._copy(item) for item in value]
        if isinstance(value, Mapping):
            return {self._copy(k): self._copy(v) for k, v in value.items()}
        return value

    def split_unsafe_tail(self, text: str) -> tuple[str, str]:
        """Split redacted ``text`` into what can be shown now and a tail to hold back.

        The tail is the longest end of ``text`` that is the start of a secret: a
        secret cut across two stream chunks is only found once the next chunk
        arrives, so that tail must wait. With no secrets the tail is always empty.
        """
        if not self._secrets or not text:
            return text, ""
        for size in range(min(len(text), self._longest - 1), 0, -1):
            tail = text[-size:]
            if tail[0] in self._first_chars and any(s.startswith(tail) for s in self._secrets):
                return text[:-size], tail
        return text, ""


#: The redactor that redacts nothing.
NO_REDACTION: Final = Redactor()
