"""Typed wrappers over IPython's display functions (they carry no annotations)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from IPython import display as _ipython_display

__all__ = [
    "OutputHandle",
    "clear_outputs",
    "display_bundle",
    "display_object",
    "new_display_id",
    "publish_bundle",
    "update_bundle",
]

_publish: Callable[..., None] = _ipython_display.publish_display_data
_display: Callable[..., Any] = _ipython_display.display
_clear: Callable[..., None] = _ipython_display.clear_output


class OutputHandle:
    """One display output that can be replaced in place (an IPython `DisplayHandle`)."""

    __slots__ = ("_handle",)

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    @property
    def display_id(self) -> str:
        """The id the frontend uses to find the output again."""
        return str(self._handle.display_id)

    def update(self, data: Mapping[str, Any]) -> None:
        """Replace the output with the raw MIME bundle ``data``."""
        update: Callable[..., None] = self._handle.update
        update(dict(data), raw=True)

    def update_object(self, obj: object) -> None:
        """Replace the output with ``obj`` (a widget), formatted by IPython."""
        update: Callable[..., None] = self._handle.update
        update(obj)


def new_display_id() -> str:
    """A fresh local display id (for outputs that are updated in place later)."""
    return f"sandbox-magic-{uuid.uuid4().hex}"


def publish_bundle(
    data: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    *,
    display_id: str | None = None,
) -> None:
    """Publish one display output from a raw MIME bundle (under ``display_id``, if given)."""
    if display_id is None:
        _publish(dict(data), dict(metadata or {}))
    else:
        _publish(dict(data), dict(metadata or {}), transient={"display_id": display_id})


def update_bundle(
    data: Mapping[str, Any], metadata: Mapping[str, Any] | None, display_id: str
) -> None:
    """Replace, in place, every output published under ``display_id``."""
    _publish(dict(data), dict(metadata or {}), transient={"display_id": display_id}, update=True)


def display_bundle(data: Mapping[str, Any]) -> OutputHandle:
    """Display a raw MIME bundle as an output that can be updated later."""
    return OutputHandle(_display(dict(data), raw=True, display_id=True))


def display_object(obj: object) -> OutputHandle:
    """Display an object (a widget) as an output that can be updated later."""
    return OutputHandle(_display(obj, display_id=True))


def clear_outputs(*, wait: bool = True) -> None:
    """Clear the cell's outputs (with ``wait``, when the next output arrives)."""
    _clear(wait=wait)
