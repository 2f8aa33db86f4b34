"""Remote tracebacks point at local cells: ``Cell In[9]`` becomes ``Cell In[10]``.

The remote kernel numbers cells by its own count, which drifts from the notebook's
as soon as one cell runs locally. `relabel_cells` rewrites the cell references of a
traceback (``Cell In[N]``, and IPython 8's older ``Input In [N]``) with a mapping
from remote numbers to local ones; numbers it does not know stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["CellNumbers", "relabel_cells"]

# "Cell In[9], line 1", with any colour codes between "Cell" and "In[".
_CELL_REF: Final = re.compile(r"((?:Cell|Input)(?:\x1b\[[0-9;]*m|[ \t])+In ?\[)(\d+)(\])")


def relabel_cells(lines: Sequence[str], numbers: Mapping[int, int]) -> list[str]:
    """``lines`` with every known remote cell number replaced by the local one."""
    if not numbers:
        return list(lines)

    def local(match: re.Match[str]) -> str:
        mapped = numbers.get(int(match.group(2)))
        return match.group(0) if mapped is None else f"{match.group(1)}{mapped}{match.group(3)}"

    return [_CELL_REF.sub(local, line) if "In" in line else line for line in lines]


class CellNumbers:
    """Remote cell numbers seen per context, mapped to the local cells that ran them."""

    def __init__(self) -> None:
        self._numbers: dict[str, dict[int, int]] = {}

    def record(self, context: str, remote: int | None, local: int | None) -> None:
        """The remote cell ``remote`` of ``context`` ran as local cell ``local``."""
        if remote is not None and local is not None:
            self._numbers.setdefault(context, {})[remote] = local

    def of(self, context: str) -> dict[int, int]:
        """Remote -> local numbers known for ``context``."""
        return dict(self._numbers.get(context, {}))
