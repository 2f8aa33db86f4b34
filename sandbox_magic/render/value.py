"""`RemoteValue`: the remote ``Out[n]``, displayed through IPython's displayhook."""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any

__all__ = ["RemoteValue"]

_REPR_LIMIT = 200


class RemoteValue:
    """The value of a remote cell's last expression, as its MIME bundle.

    Returned by the magic, it becomes the cell's ``Out[n]`` and ``_``: IPython calls
    `_repr_mimebundle_` and shows the richest representation, as for a local value.
    The Python object itself stays remote; ``data`` holds what was sent back.
    """

    __slots__ = ("data", "metadata")

    def __init__(self, data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data)
        self.metadata: dict[str, Any] = dict(metadata or {})

    @property
    def text(self) -> str:
        """The ``text/plain`` representation (empty if none)."""
        value = self.data.get("text/plain", "")
        return value if isinstance(value, str) else str(value)

    def _repr_mimebundle_(
        self, include: Container[str] | None = None, exclude: Container[str] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        data = {
            mime: value
            for mime, value in self.data.items()
            if (include is None or mime in include) and (exclude is None or mime not in exclude)
        }
        metadata = {mime: value for mime, value in self.metadata.items() if mime in data}
        return data, metadata

    def __repr__(self) -> str:
        text = self.text
        if len(text) > _REPR_LIMIT:
            text = text[: _REPR_LIMIT - 1] + "…"
        return text or f"<RemoteValue {', '.join(self.data)}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemoteValue):
            return NotImplemented
        return self.data == other.data and self.metadata == other.metadata

    __hash__ = None  # type: ignore[assignment]
