"""The value itself of a remote ``Out[n]``, when the sandbox sent it as plain data.

The local server's kernels add `VALUE_MIME` to a result whose value is plain JSON
data (see `sandbox_magic.server.kernel_side`); the server moves it to the result's
``plain_value`` field. Such a value is decoded from JSON
(never evaluated, never unpickled), redacted like every output, and becomes the
cell's ``_`` and ``Out[n]``. Other servers simply do not send it: the cell's value
is then a `RemoteValue`.
"""

from __future__ import annotations

from typing import Any, Final

from sandbox_magic.client import Result
from sandbox_magic.render.redact import NO_REDACTION, Redactor

__all__ = ["NOT_CARRIED", "VALUE_MIME", "carried_value"]

#: Must match ``sandbox_magic.server.kernel_side.VALUE_MIME`` (a test checks it).
VALUE_MIME: Final = "application/vnd.sandbox-magic.value+json"
_MAX_DEPTH: Final = 20

#: Returned by `carried_value` when the result carries no usable value.
NOT_CARRIED: Final = object()


def _plain(value: Any, redactor: Redactor, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redactor.text(value)
    if depth >= _MAX_DEPTH:
        raise ValueError("too deep")
    if isinstance(value, list):
        return [_plain(item, redactor, depth + 1) for item in value]
    if isinstance(value, dict):
        return {
            redactor.text(str(key)): _plain(item, redactor, depth + 1)
            for key, item in value.items()
        }
    raise ValueError(f"not plain data: {type(value).__name__}")


def carried_value(result: Result, redactor: Redactor = NO_REDACTION) -> Any:
    """The plain value ``result`` carries (redacted), or `NOT_CARRIED`."""
    raw = result.extra.get("plain_value") if isinstance(result.extra, dict) else None
    if raw is None and isinstance(result.data, dict):
        raw = result.data.get(VALUE_MIME)
    if not isinstance(raw, dict) or set(raw) != {"value"}:
        return NOT_CARRIED
    try:
        return _plain(raw["value"], redactor, 0)
    except ValueError:
        return NOT_CARRIED
