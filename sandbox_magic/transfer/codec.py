"""Local encoding and safe decoding, with names and sizes checked.

A thin layer over the portable codec (which the sandbox runs too): it validates
variable names, applies the size limit and turns refusals into `TransferError`.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sandbox_magic.transfer import _portable
from sandbox_magic.transfer.errors import TransferError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "FORMATS",
    "SUPPORTED_TYPES",
    "Encoded",
    "check_name",
    "classify",
    "decode_value",
    "encode_value",
    "human_size",
    "local_formats",
    "parse_names",
]

DEFAULT_MAX_BYTES: Final = 200 * 1024 * 1024
#: Every format a payload may claim; anything else (``pickle``...) is refused.
FORMATS: Final = _portable.FORMATS
SUPPORTED_TYPES: Final = _portable.SUPPORTED_TYPES
human_size = _portable.human_size

_RESERVED_NAMES: Final = frozenset({"globals"})


@dataclass(frozen=True, slots=True)
class Encoded:
    """A value encoded for transfer: its format, kind and payload bytes."""

    format: str
    kind: str
    data: bytes

    @property
    def sha256(self) -> str:
        """Hex SHA-256 of the payload."""
        return _portable.sha256_hex(self.data)


def check_name(name: object) -> str:
    """Return `name` if it is a plain Python identifier usable as a variable, else refuse."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise TransferError(
            f"{name!r:.60} is not a valid Python variable name; names must be identifiers "
            "such as df or results_2."
        )
    if (name.startswith("__") and name.endswith("__")) or name in _RESERVED_NAMES:
        raise TransferError(f"{name!r} is reserved and cannot be transferred; pick another name.")
    return name


def parse_names(spec: str) -> list[str]:
    """Split ``"a, b,c"`` (the argument of ``--push``/``--pull``) into checked names."""
    names: list[str] = []
    for part in spec.split(","):
        name = check_name(part.strip())
        if name not in names:
            names.append(name)
    return names


def local_formats() -> tuple[str, ...]:
    """The formats this Python can read and write, given its installed libraries."""
    return tuple(_portable.capabilities()["formats"])


def classify(value: object, name: str = "the value") -> str:
    """The kind of `value` (``json``, ``ndarray``, ``dataframe``, ``series``), or refuse it."""
    try:
        return _portable.classify(value, name)
    except _portable.CodecError as exc:
        raise TransferError(f"Cannot transfer {name}: {exc}") from None


def encode_value(
    value: object,
    *,
    name: str = "the value",
    formats: Sequence[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Encoded:
    """Encode `value` in the best of `formats` (default: all local ones) within `max_bytes`."""
    allowed = local_formats() if formats is None else tuple(formats)
    kind = classify(value, name)
    nbytes = getattr(value, "nbytes", None)
    if kind == _portable.KIND_NDARRAY and isinstance(nbytes, int) and nbytes > max_bytes:
        raise _too_big(name, nbytes, max_bytes)
    try:
        fmt, kind, data = _portable.encode(value, name, allowed)
    except _portable.CodecError as exc:
        raise TransferError(f"Cannot transfer {name}: {exc}") from None
    if len(data) > max_bytes:
        raise _too_big(name, len(data), max_bytes, fmt)
    return Encoded(fmt, kind, data)


def _too_big(name: str, size: int, limit: int, fmt: str | None = None) -> TransferError:
    encoded = f" encoded as {fmt}" if fmt else ""
    return TransferError(
        f"Cannot transfer {name}: it is {human_size(size)}{encoded}, over the limit of "
        f"{human_size(limit)} (max_bytes). Send a subset, or raise the limit."
    )


def decode_value(
    fmt: object,
    kind: object,
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    label: str = "the value",
) -> object:
    """Decode a payload with the safe reader of its format, checking size and type.

    Never unpickles or evaluates: JSON, ``.npy`` without pickle, Arrow IPC, or the
    ``pandas-npy`` container built from those.
    """
    if len(data) > max_bytes:
        raise _too_big(label, len(data), max_bytes)
    try:
        return _portable.decode(fmt, kind, data)
    except _portable.CodecError as exc:
        raise TransferError(f"Cannot read {label}: {exc}") from None
