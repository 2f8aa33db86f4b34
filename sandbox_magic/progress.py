"""Turn successive snapshots of a run's `Execution` into ordered, never repeated outputs.

While a run is polled, each snapshot carries everything produced so far. `OutputCursor`
remembers how much of each list (stdout chunks, stderr chunks, results) it has already
handed out and returns only what is new, so a caller can print increments as they come.

Ordering:

- When the snapshot has ``output_order`` (the local server sends it), outputs come in
  that order, so prints and displays interleave as they happened. The list is
  append-only; the cursor consumes it from where it stopped.
- Without it, new stdout chunks come first, then new stderr chunks, then new results.

Robustness choices, for servers that send inconsistent data:

- Per kind, what has been emitted is always a prefix of that kind's list, tracked by a
  count. Nothing is ever emitted twice, whatever the snapshots say.
- An ``output_order`` entry pointing past the end of its list (the list lags the order)
  makes the cursor wait for a later snapshot; one pointing at an item already emitted
  is skipped; one skipping over an item, or an order that is not an extension of the one
  seen before, switches the cursor to the fallback order for good.
- A list that shrinks emits nothing until it grows past what was already emitted.
- A snapshot without ``output_order`` is handled in the fallback order.
- With ``final=True`` (the run has ended), whatever the order did not reference is
  flushed in the fallback order, so no output is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from sandbox_magic.api.models import Execution, OutputRef, Result

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

    __slots__ = ("_consumed", "_emitted", "_use_order")

    def __init__(self) -> None:
        self._emitted: dict[str, int] = {"stdout": 0, "stderr": 0, "result": 0}
        self._consumed: list[OutputRef] = []
        self._use_order = True

    @property
    def counts(self) -> tuple[int, int, int]:
        """How many stdout chunks, stderr chunks and results have been emitted."""
        return self._emitted["stdout"], self._emitted["stderr"], self._emitted["result"]

    @property
    def follows_order(self) -> bool:
        """False once an inconsistent ``output_order`` made the cursor fall back for good."""
        return self._use_order

    def advance(self, execution: Execution, *, final: bool = False) -> list[Output]:
        """What ``execution`` holds that was not emitted yet, in display order.

        Pass ``final=True`` for the snapshot of an ended run, to flush everything.
        """
        out: list[Output] = []
        order = execution.output_order
        if order is not None and self._use_order:
            self._follow_order(execution, order, out)
            if final or not self._use_order:
                self._fallback(execution, out)
        else:
            self._fallback(execution, out)
        return out

    def _follow_order(
        self, execution: Execution, order: tuple[OutputRef, ...], out: list[Output]
    ) -> None:
        seen = len(self._consumed)
        if len(order) < seen or list(order[:seen]) != self._consumed:
            self._use_order = False  # the order was rewritten, not extended
            return
        for ref in order[seen:]:
            emitted = self._emitted.get(ref.kind)
            if emitted is None:
                self._use_order = False  # an unknown kind of output
                return
            if ref.index < emitted:
                pass  # already emitted (a snapshot without order came in between)
            elif ref.index > emitted:
                self._use_order = False  # it skips an item: no longer trustworthy
                return
            elif ref.index >= _length(execution, ref.kind):
                return  # the list lags the order: wait for the next snapshot
            else:
                out.append(_item(execution, ref.kind, ref.index))
                self._emitted[ref.kind] += 1
            self._consumed.append(ref)

    def _fallback(self, execution: Execution, out: list[Output]) -> None:
        for kind in ("stdout", "stderr", "result"):
            total = _length(execution, kind)
            for index in range(self._emitted[kind], total):
                out.append(_item(execution, kind, index))
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
    """All outputs of a finished execution at once, in display order (e.g. re-attach)."""
    return OutputCursor().advance(execution, final=True)
