"""Shared by every part of the portable codec: protocol constants, helpers, classification."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from typing import Any

PROTOCOL = "sandbox-magic-transfer"
PROTOCOL_VERSION = 1
MIME_TYPE = "application/vnd.sandbox-magic.transfer+json"
STORE_NAME = "__sandbox_magic_transfers__"
#: The name of the function that wraps every generated snippet; its presence marks
#: transfer code, which is scrubbed from the sandbox's input history.
ENTRY_NAME = "__sandbox_magic_transfer__"

FORMAT_JSON = "json"
FORMAT_NPY = "npy"
FORMAT_ARROW = "arrow"
FORMAT_PANDAS_NPY = "pandas-npy"
FORMATS = (FORMAT_ARROW, FORMAT_PANDAS_NPY, FORMAT_NPY, FORMAT_JSON)

KIND_JSON = "json"
KIND_NDARRAY = "ndarray"
KIND_DATAFRAME = "dataframe"
KIND_SERIES = "series"
#: For each kind, the formats that can carry it, most preferred first.
FORMATS_BY_KIND = {
    KIND_JSON: (FORMAT_JSON,),
    KIND_NDARRAY: (FORMAT_NPY,),
    KIND_DATAFRAME: (FORMAT_ARROW, FORMAT_PANDAS_NPY),
    KIND_SERIES: (FORMAT_ARROW, FORMAT_PANDAS_NPY),
}

SUPPORTED_TYPES = (
    "JSON-able values (None, bool, int, float, str, list, dict with str keys), "
    "numpy arrays (any dtype but object), pandas DataFrame and Series"
)


#: pyarrow before 14.0.1 could unpickle data while reading IPC (CVE-2023-47248).
MIN_PYARROW = (14, 0, 1)


class CodecError(Exception):
    """A refusal or failure, with a message for the notebook user."""


# -- helpers ---------------------------------------------------------------------------


def type_name(value: object) -> str:
    """The qualified name of a value's type, e.g. ``pandas.DataFrame`` or ``set``."""
    kind = type(value)
    module = kind.__module__.split(".")[0]
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def human_size(size: int) -> str:
    """A byte count for people: ``512 bytes``, ``3.5 MiB``."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def sha256_hex(data: bytes) -> str:
    """The hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def _module(name: str) -> Any:
    """Import an optional module, or None when it is absent (or hidden)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _require(name: str, why: str) -> Any:
    module = _module(name)
    if module is None:
        raise CodecError(f"{name} is not installed here; it is needed {why}.")
    return module


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        parts.append(int(digits or 0))
    return tuple(parts)


def _dist_version(name: str) -> str | None:
    if not _has_module(name):
        return None
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        module = _module(name)
        return getattr(module, "__version__", None) if module is not None else None


def capabilities() -> dict[str, Any]:
    """Which optional libraries this side has, and so which formats it can read and write."""
    numpy, pandas, pyarrow = (_dist_version(n) for n in ("numpy", "pandas", "pyarrow"))
    formats = [FORMAT_JSON]
    if numpy:
        formats.append(FORMAT_NPY)
        if pandas:
            formats.append(FORMAT_PANDAS_NPY)
            if pyarrow and _version_tuple(pyarrow) >= MIN_PYARROW:
                formats.append(FORMAT_ARROW)
    return {
        "python": ".".join(str(n) for n in sys.version_info[:3]),
        "numpy": numpy,
        "pandas": pandas,
        "pyarrow": pyarrow,
        "formats": formats,
    }


# -- classification --------------------------------------------------------------------


def check_json(value: object, label: str) -> None:
    """Refuse anything JSON would not carry faithfully, naming where it sits."""
    stack: list[tuple[object, str]] = [(value, label)]
    seen: set[int] = set()
    while stack:
        item, path = stack.pop()
        if item is None or isinstance(item, (bool, int, float, str)):
            continue
        if isinstance(item, (list, dict)):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, list):
                stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
                continue
            for key, v in item.items():
                if not isinstance(key, str):
                    raise CodecError(
                        f"{path} has a key of type {type_name(key)} ({key!r:.40}); "
                        "only str keys survive JSON. Supported: " + SUPPORTED_TYPES + "."
                    )
                stack.append((v, f"{path}[{key!r:.40}]"))
            continue
        raise CodecError(
            f"{path} is a {type_name(item)}, which cannot be transferred. "
            f"Supported: {SUPPORTED_TYPES}."
        )


def classify(value: object, label: str) -> str:
    """The kind of a value (`KIND_*`), or `CodecError` naming what is unsupported."""
    pandas = sys.modules.get("pandas")
    numpy = sys.modules.get("numpy")
    if pandas is not None:
        if type(value) is pandas.DataFrame:
            return KIND_DATAFRAME
        if type(value) is pandas.Series:
            return KIND_SERIES
        if isinstance(value, (pandas.DataFrame, pandas.Series)):
            raise CodecError(
                f"{label} is a {type_name(value)}, a subclass whose extra state would be "
                "lost; convert it to a plain DataFrame or Series first."
            )
    if numpy is not None and isinstance(value, numpy.ndarray):
        if type(value) is not numpy.ndarray:
            raise CodecError(
                f"{label} is a {type_name(value)}; only plain numpy.ndarray is supported "
                "(use numpy.asarray, and send a mask separately)."
            )
        if value.dtype.hasobject:
            raise CodecError(
                f"{label} is a numpy array of dtype {value.dtype}: object arrays would need "
                "pickle and are refused. Convert it to a concrete dtype, a list, or a DataFrame."
            )
        return KIND_NDARRAY
    check_json(value, label)
    return KIND_JSON
