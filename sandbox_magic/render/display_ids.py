"""Remote display ids mapped to local ones, so ``handle.update(...)`` in remote code
updates the matching output here.

One map lives as long as the extension (not one cell): an update made in a later
cell finds the output an earlier cell displayed, as it would locally. Local ids are
fresh (``sandbox-magic-<hex>``), so remote code cannot aim at outputs of its own
choosing, such as the status line.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Final

from sandbox_magic.client import Result
from sandbox_magic.render.publish import new_display_id

__all__ = ["DisplayChanges", "DisplayIds", "is_update", "remote_display_id"]

_MAX_IDS: Final = 10_000


def remote_display_id(result: Result) -> str | None:
    """The display id the remote kernel gave ``result`` (None without one)."""
    value: Any = result.extra.get("display_id") if isinstance(result.extra, dict) else None
    return value if isinstance(value, str) and value else None


def is_update(result: Result) -> bool:
    """True when ``result`` is an update of a display an earlier run created."""
    return isinstance(result.extra, dict) and result.extra.get("update") is True


class DisplayIds:
    """Remote display id -> local display id (the most recent ``10_000`` are kept)."""

    def __init__(self, max_ids: int = _MAX_IDS) -> None:
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._max = max(1, max_ids)

    def local(self, remote: str) -> str:
        """The local id for ``remote``, made on first use."""
        local = self._ids.get(remote)
        if local is None:
            local = self._ids[remote] = new_display_id()
            while len(self._ids) > self._max:
                self._ids.popitem(last=False)
        else:
            self._ids.move_to_end(remote)
        return local

    def known(self, remote: str) -> str | None:
        """The local id for ``remote`` if an output was shown under it, else None."""
        return self._ids.get(remote)


class DisplayChanges:
    """Which results already shown have changed since (remote ``update_display_data``).

    The server replaces a result's bundle in place when the code updates its display,
    so a poller sees the same index with new content. Only results with a display id
    are compared; each index is scanned for one once.
    """

    def __init__(self) -> None:
        self._seen: dict[int, Result] = {}
        self._scanned = 0

    def changed(self, results: Sequence[Result], shown: int) -> list[Result]:
        """Results among the first ``shown`` whose bundle differs from the last call's."""
        shown = min(shown, len(results))
        for index in range(self._scanned, shown):
            if remote_display_id(results[index]) is not None:
                self._seen[index] = results[index]
        self._scanned = max(self._scanned, shown)
        changed: list[Result] = []
        for index, before in self._seen.items():
            if index < len(results) and results[index] != before:
                self._seen[index] = results[index]
                changed.append(results[index])
        return changed
