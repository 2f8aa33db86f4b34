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

    #: What a `RemoteValue` is and how to get the object; said by errors and ``repr``.
    HINT = (
        "it is how a remote value looks (its display); the object itself stays in the "
        "sandbox. Bring it here with `%%sandbox --pull NAME` after assigning it to NAME."
    )

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

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's plain-text form: the remote ``text/plain``, as ``Out[n]`` shows it."""
        printer.text(str(self))

    def __str__(self) -> str:
        return self.text or f"<RemoteValue {', '.join(self.data)}>"

    def __repr__(self) -> str:
        text = self.text
        if len(text) > _REPR_LIMIT:
            text = text[: _REPR_LIMIT - 1] + "…"
        shown = text or ", ".join(self.data)
        return f"<RemoteValue {shown!r}: {self.HINT}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_repr_") or name.startswith("_ipython"):
            raise AttributeError(name)  # protocols probed by Python and IPython
        raise AttributeError(f"RemoteValue has no attribute {name!r}: {self.HINT}")

    def __bool__(self) -> bool:
        return True

    def _unsupported(self, *_args: Any) -> Any:
        raise TypeError(f"A RemoteValue cannot be computed with: {self.HINT}")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _unsupported
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = _unsupported
    __mod__ = __rmod__ = __pow__ = __rpow__ = __matmul__ = __rmatmul__ = _unsupported
    __lt__ = __le__ = __gt__ = __ge__ = __neg__ = __abs__ = _unsupported
    __getitem__ = __len__ = __iter__ = __int__ = __float__ = _unsupported

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RemoteValue):
            return NotImplemented
        return self.data == other.data and self.metadata == other.metadata

    __hash__ = None  # type: ignore[assignment]
