"""Turn successive snapshots of a run's `Execution` into ordered, never repeated outputs.

While a run is polled, each snapshot carries everything produced so far. `OutputCursor`
remembers how much of each list (stdout chunks, stderr chunks, results) it has already
handed out and returns only what is new, so a caller can print increments as they come.

Ordering:

- When the snapshot has ``output_order`` (the local server sends it), outputs come in
  that order, so prints and displays interleave as they happened.
- Without it, new stdout chunks come first, then new stderr chunks, then new results.

``output_order`` is the truth about what a notebook would show. Its entries only ever
point forward within each list (the lists are append-only), but entries leave the order
when the code calls ``clear_output``. So the cursor walks the whole order each time:

- an entry at or before what was already emitted of its kind is skipped;
- an entry further on is emitted, and the items it jumps over are taken as cleared
  before this client saw them (they are not shown, as in the notebook);
- an entry pointing past the end of its list makes the cursor wait for a later snapshot
  (nothing after it is emitted yet);
- when entries already emitted have left the order, `OutputCursor.cleared` turns True
  for that call: the outputs it returned replace everything shown so far;
- an entry of an unknown kind makes the cursor fall back to the stream-first order for
  good.

Robustness: per kind, what has been emitted is always a prefix of the list, tracked by a
count, so nothing is ever emitted twice whatever the snapshots say. A list that shrinks
emits nothing until it grows past that count. A snapshot without ``output_order`` is
handled in the fallback order, and a later ordered snapshot skips what it emitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from sandbox_magic.client._models import Execution, OutputRef, Result

__all__ = ["Output", "OutputCursor", "StreamChunk", "ordered_outputs"]

StreamName: TypeAlias = Literal["stdout", "stderr"]


@dataclass(frozen=True, slots=True)
class StreamChunk:
    """A piece of the run's standard output or standard error."""

    name: StreamName
    text: str


Output: TypeAlias = StreamChunk | Result


class OutputCursor:
    """Remembers what has been emitted from a run's snapshots; see the module docstring."""

    __slots__ = ("_cleared", "_emitted", "_shown", "_use_order")

    def __init__(self) -> None:
        self._emitted: dict[str, int] = {"stdout": 0, "stderr": 0, "result": 0}
        self._shown: list[OutputRef] = []
        self._use_order = True
        self._cleared = False

    @property
    def counts(self) -> tuple[int, int, int]:
        """How far into stdout chunks, stderr chunks and results the cursor has got."""
        return self._emitted["stdout"], self._emitted["stderr"], self._emitted["result"]

    @property
    def follows_order(self) -> bool:
        """False once a malformed ``output_order`` made the cursor fall back for good."""
        return self._use_order

    @property
    def cleared(self) -> bool:
        """True when the last `advance` saw ``clear_output``: its outputs replace all shown."""
        return self._cleared

    def advance(self, execution: Execution) -> list[Output]:
        """What ``execution`` holds that was not emitted yet, in display order."""
        out: list[Output] = []
        self._cleared = False
        order = execution.output_order
        if order is not None and self._use_order:
            self._follow_order(execution, order, out)
        else:
            self._fallback(execution, out)
        return out

    def _follow_order(
        self, execution: Execution, order: tuple[OutputRef, ...], out: list[Output]
    ) -> None:
        if any(ref.kind not in self._emitted for ref in order):
            self._use_order = False
            self._fallback(execution, out)
            return
        present = set(order)
        if any(ref not in present for ref in self._shown):
            self._cleared = True
            self._shown = [ref for ref in self._shown if ref in present]
        for ref in order:
            if ref.index < self._emitted[ref.kind]:
                continue  # emitted already (or by a snapshot that had no order)
            if ref.index >= _length(execution, ref.kind):
                return  # the list lags the order: wait for the next snapshot
            out.append(_item(execution, ref.kind, ref.index))
            self._emitted[ref.kind] = ref.index + 1
            self._shown.append(ref)

    def _fallback(self, execution: Execution, out: list[Output]) -> None:
        for kind in ("stdout", "stderr", "result"):
            total = _length(execution, kind)
            for index in range(self._emitted[kind], total):
                out.append(_item(execution, kind, index))
                self._shown.append(OutputRef(kind, index))
            self._emitted[kind] = max(self._emitted[kind], total)


def _length(execution: Execution, kind: str) -> int:
    if kind == "stdout":
        return len(execution.logs.stdout)
    if kind == "stderr":
        return len(execution.logs.stderr)
    return len(execution.results)


def _item(execution: Execution, kind: str, index: int) -> Output:
    if kind == "stdout":
        return StreamChunk("stdout", execution.logs.stdout[index])
    if kind == "stderr":
        return StreamChunk("stderr", execution.logs.stderr[index])
    return execution.results[index]


def ordered_outputs(execution: Execution) -> list[Output]:
    """All outputs of a finished execution at once, in display order (e.g. re-attach).

    With ``output_order``, outputs the code cleared (``clear_output``) are left out.
    """
    return OutputCursor().advance(execution)
