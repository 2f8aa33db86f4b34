"""The cell's stdout and stderr: remote chunks written like local prints, within a budget.

Each chunk goes to the ``sys.stdout``/``sys.stderr`` current at write time (the
kernel's stream for the running cell, or a capture), flushed at once, ANSI colours
kept. Text is redacted; the end of a chunk that could be the start of a secret is
held back until the next chunk (or `StreamWriter.flush`) shows whether it is one.

Each stream may write ``max_bytes`` per cell. Once its head has used all but the
tail's share (``tail_bytes``: 64 KiB, at most a quarter of the budget), the chunk that
crosses is cut and one note says the rest is held back; `StreamWriter.close` then
reports how much was dropped and writes the stream's last part, so the end of a long
print (its summary, its last error) is still seen.
Nothing is dropped silently.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from sandbox_magic.render.redact import NO_REDACTION, Redactor
from sandbox_magic.render.text import (
    CONFIG_HINT,
    human_size,
    limit_note,
    strip_ansi,
    truncate_utf8,
    utf8_len,
)

__all__ = ["STREAM_NAMES", "StreamWriter", "last_line"]

STREAM_NAMES = ("stdout", "stderr")


#: How much of the end of a chunk `last_line` looks at first.
_TAIL_WINDOW = 16 * 1024


def last_line(text: str) -> str | None:
    """The last non-blank line of ``text``, without ANSI codes; None if all blank.

    Only the end of the text is read when the line lies there, so a chunk of many
    megabytes costs about as much as a short one.
    """
    start = len(text) - _TAIL_WINDOW
    if start > 0:
        # The first line of the window may be cut; any later one is whole.
        for line in reversed(strip_ansi(text[start:]).splitlines()[1:]):
            if line.strip():
                return line.strip()
    for line in reversed(strip_ansi(text).splitlines()):
        if line.strip():
            return line.strip()
    return None


def _system_stream(name: str) -> TextIO:
    return sys.stderr if name == "stderr" else sys.stdout


#: How much of the end of a stream over its budget is still shown.
TAIL_BYTES = 64 * 1024


class _Budget:
    __slots__ = ("dropped", "reported", "tail", "tail_size", "used")

    def __init__(self) -> None:
        self.used = 0
        self.dropped = 0
        self.reported = 0
        self.tail: list[str] = []
        self.tail_size = 0

    def keep(self, text: str, limit: int) -> None:
        """Remember ``text`` as the newest part of the tail (at most ``limit`` bytes)."""
        self.tail.append(text)
        self.tail_size += len(text)
        while len(self.tail) > 1 and self.tail_size - len(self.tail[0]) >= limit:
            self.tail_size -= len(self.tail.pop(0))

    def take_tail(self, limit: int) -> str:
        """The last ``limit`` bytes (or so) kept, starting at a line if one starts soon."""
        text = "".join(self.tail)
        self.tail, self.tail_size = [], 0
        if utf8_len(text) > limit:
            text = text.encode("utf-8", "surrogatepass")[-limit:].decode("utf-8", "ignore")
            newline = text.find("\n", 0, 4096)
            if newline >= 0:
                text = text[newline + 1 :]
        return text


class StreamWriter:
    """Writes remote stream chunks to the local streams; see the module docstring."""

    def __init__(
        self,
        *,
        max_bytes: int,
        redactor: Redactor = NO_REDACTION,
        streams: Callable[[str], TextIO] = _system_stream,
        tail_bytes: int = TAIL_BYTES,
    ) -> None:
        self.max_bytes = max(1, max_bytes)
        # The tail is part of the budget: what a stream shows never exceeds max_bytes.
        self.tail_bytes = max(0, min(tail_bytes, self.max_bytes // 4))
        self.redactor = redactor
        self._streams = streams
        self._held: dict[str, str] = {}
        self._budgets = {name: _Budget() for name in STREAM_NAMES}

    def write(self, name: str, text: str) -> str | None:
        """Write one chunk; returns its last non-blank line (redacted) for a status view."""
        name = name if name in STREAM_NAMES else "stdout"
        text = self.redactor.text(self._held.pop(name, "") + text)
        text, held = self.redactor.split_unsafe_tail(text)
        if held:
            self._held[name] = held
        self._emit(name, text)
        return last_line(text)

    def flush(self) -> None:
        """Write any held-back tails (they turned out not to be secrets)."""
        for name in list(self._held):
            self._emit(name, self._held.pop(name))

    def close(self) -> None:
        """Flush, then say how much each stream dropped and show its end (once)."""
        self.flush()
        for name, budget in self._budgets.items():
            if budget.dropped > budget.reported:
                tail = budget.take_tail(self.tail_bytes)
                dropped = budget.dropped - budget.reported - utf8_len(tail)
                budget.reported = budget.dropped
                note = limit_note(name, max(0, dropped), self.max_bytes, "dropped")
                if tail:
                    note += f"; its last {human_size(utf8_len(tail))} follow"
                self._put(name, note + "\n" + tail)

    def reset(self) -> None:
        """Start the budgets afresh (after the outputs were cleared); flushes first."""
        self.close()
        self._budgets = {name: _Budget() for name in STREAM_NAMES}

    def dropped(self, name: str) -> int:
        """Bytes of ``name`` dropped so far because of the budget."""
        return self._budgets[name].dropped

    def _emit(self, name: str, text: str) -> None:
        if not text:
            return
        budget = self._budgets[name]
        if budget.dropped:  # over the limit: keep the end for `close`
            budget.dropped += utf8_len(text)
            budget.keep(text, self.tail_bytes)
            return
        size = utf8_len(text)
        room = self.max_bytes - self.tail_bytes - budget.used
        if size <= room:
            budget.used += size
            self._put(name, text)
            return
        head = truncate_utf8(text, max(0, room))
        budget.used = self.max_bytes - self.tail_bytes
        budget.dropped = size - utf8_len(head)
        budget.keep(text[len(head) :], self.tail_bytes)
        note = (
            f"\n… {name} reached its limit of {human_size(self.max_bytes)} for this cell; "
            f"the rest is dropped but its end is shown when the cell ends ({CONFIG_HINT})\n"
        )
        self._put(name, head + note)

    def _put(self, name: str, text: str) -> None:
        stream = self._streams(name)
        stream.write(text)
        stream.flush()
