"""A small table that renders as HTML in notebooks and as aligned text elsewhere."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Table"]


@dataclass(frozen=True)
class Table:
    """Rows of strings under a header, with an optional caption and footnote."""

    columns: Sequence[str]
    rows: Sequence[Sequence[str]]
    caption: str = ""
    footnote: str = ""

    def __repr__(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=False)]
        lines = [self.caption] if self.caption else []
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        lines.extend(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
            for row in self.rows
        )
        if not self.rows:
            lines.append("(none)")
        if self.footnote:
            lines.append(self.footnote)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = (
            "".join(
                "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>"
                for row in self.rows
            )
            or f'<tr><td colspan="{len(self.columns)}">(none)</td></tr>'
        )
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        foot = f"<p><small>{html.escape(self.footnote)}</small></p>" if self.footnote else ""
        return (
            f'<table class="sandbox-magic-table">{caption}<thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>{foot}"
        )
