"""The transfer codec that runs on both sides.

This module is imported in the notebook and, as source text, sent to the sandbox (see
`sandbox_magic.transfer.remote`, which strips annotations and docstrings and wraps it
in a function). So it must stay self-contained: standard library only, with numpy,
pandas and pyarrow imported lazily when present; no imports from sandbox_magic; no
syntax newer than Python 3.8 once annotations are gone.

Safety rules, the same in both directions: decoding uses JSON, NumPy ``.npy`` with
``allow_pickle=False`` (object dtypes refused before reading) and Arrow IPC
(compressed bodies refused, full validation before conversion). Nothing is unpickled
or evaluated.

Formats:

``json``         UTF-8 JSON text of a JSON-able value
``npy``          one NumPy array in ``.npy`` format (no object dtypes)
``arrow``        a pandas DataFrame or Series as an Arrow IPC stream
``pandas-npy``   a DataFrame or Series without pyarrow: a JSON header describing the
                 columns and index, followed by ``.npy`` (and JSON) blobs
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import importlib.util
import io
import json
import math
import os
import struct
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

_ARROW_META_KEY = b"sandbox_magic"
_FRAME_MAGIC = b"SMXFRAME1\n"
_NUMERIC_KINDS = "biufcmM"
_MASKED_DTYPES = (
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "UInt64",
    "Float32",
    "Float64",
    "boolean",
)


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


# -- json and npy ----------------------------------------------------------------------


def _json_encode(value: object) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    except (ValueError, TypeError, RecursionError) as exc:
        raise CodecError(f"cannot write the value as JSON: {exc}") from None


def _json_decode(data: bytes) -> object:
    return json.loads(data.decode("utf-8"))


def _npy_encode(array: Any) -> bytes:
    numpy = _require("numpy", "to send a numpy array")
    buffer = io.BytesIO()
    numpy.lib.format.write_array(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _npy_decode(data: bytes) -> Any:
    numpy = _require("numpy", "to read a numpy array")
    fmt = numpy.lib.format
    stream = io.BytesIO(data)
    version = fmt.read_magic(stream)
    if version == (1, 0):
        shape, _fortran, dtype = fmt.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, _fortran, dtype = fmt.read_array_header_2_0(stream)
    else:
        raise CodecError(f"npy format version {version} is not accepted")
    if dtype.hasobject:
        raise CodecError(f"npy payload of dtype {dtype} refused: object arrays need pickle")
    expected = dtype.itemsize * math.prod(shape)
    if len(data) - stream.tell() != expected:
        raise CodecError("npy payload length does not match its header")
    stream.seek(0)
    return fmt.read_array(stream, allow_pickle=False)


# -- arrow -----------------------------------------------------------------------------


def _pyarrow() -> Any:
    pyarrow = _require("pyarrow", "for the arrow format")
    if _version_tuple(pyarrow.__version__) < MIN_PYARROW:
        raise CodecError(f"pyarrow {pyarrow.__version__} is too old to read safely (need 14.0.1)")
    return pyarrow


def _series_name(series: Any) -> object:
    name = series.name
    if hasattr(name, "item") and type(name).__module__ == "numpy":
        name = name.item()
    if name is not None and not isinstance(name, (bool, int, float, str)):
        raise CodecError(
            f"the Series name {name!r:.60} is a {type_name(name)}; only str, int, float, "
            "bool or None names are supported, rename it first."
        )
    return name


def _check_labels(frame: Any) -> None:
    columns = frame.columns
    if columns.has_duplicates:
        dup = list(columns[columns.duplicated()])[:5]
        raise CodecError(f"the DataFrame has duplicate column labels {dup}; rename them first.")
    if columns.nlevels == 1 and columns.inferred_type in ("mixed", "mixed-integer"):
        raise CodecError(
            "the DataFrame's column labels mix types (e.g. str and int), which would not "
            "survive the transfer; make them all str first."
        )


def _arrow_encode(value: Any, kind: str) -> bytes:
    pyarrow = _pyarrow()
    meta: dict[str, Any] = {"kind": kind}
    if kind == KIND_SERIES:
        meta["series_name"] = _series_name(value)
        frame = value.to_frame(name="values")
    else:
        frame = value
        _check_labels(frame)
    try:
        table = pyarrow.Table.from_pandas(frame, preserve_index=None)
    except (pyarrow.ArrowException, ValueError, TypeError) as exc:
        raise CodecError(f"cannot convert to Arrow: {exc}") from None
    schema_meta = dict(table.schema.metadata or {})
    schema_meta[_ARROW_META_KEY] = json.dumps(meta).encode("utf-8")
    table = table.replace_schema_metadata(schema_meta)
    sink = pyarrow.BufferOutputStream()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _u(fmt: str, buf: bytes, pos: int) -> int:
    if pos < 0 or pos + struct.calcsize(fmt) > len(buf):
        raise CodecError("malformed Arrow message metadata")
    value: int = struct.unpack_from(fmt, buf, pos)[0]
    return value


def _fb_field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field `index` of the flatbuffer table at `table`, if set."""
    vtable = table - _u("<i", buf, table)
    slot = 4 + 2 * index
    if slot + 2 > _u("<H", buf, vtable):
        return None
    offset = _u("<H", buf, vtable + slot)
    return table + offset if offset else None


def _fb_table(buf: bytes, pos: int) -> int:
    return pos + _u("<I", buf, pos)


def _arrow_check_uncompressed(data: bytes) -> None:
    """Walk the IPC stream's messages and refuse compressed bodies (decompression bombs).

    Reads just enough of each message's flatbuffer: Message.header_type (field 1),
    Message.header (2), Message.bodyLength (3); RecordBatch.compression (3);
    DictionaryBatch.data (1).
    """
    pos, end = 0, len(data)
    while pos + 4 <= end:
        size = _u("<i", data, pos)
        pos += 4
        if size == -1:
            size = _u("<i", data, pos)
            pos += 4
        if size == 0:
            return
        if size < 0 or pos + size > end:
            raise CodecError("malformed Arrow stream framing")
        meta = data[pos : pos + size]
        pos += size
        root = _fb_table(meta, 0)
        type_pos = _fb_field(meta, root, 1)
        header_type = meta[type_pos] if type_pos is not None and type_pos < len(meta) else 0
        header_pos = _fb_field(meta, root, 2)
        body_pos = _fb_field(meta, root, 3)
        body = _u("<q", meta, body_pos) if body_pos is not None else 0
        batch: int | None = None
        if header_pos is not None and header_type == 3:  # RecordBatch
            batch = _fb_table(meta, header_pos)
        elif header_pos is not None and header_type == 2:  # DictionaryBatch
            data_pos = _fb_field(meta, _fb_table(meta, header_pos), 1)
            batch = _fb_table(meta, data_pos) if data_pos is not None else None
        if batch is not None and _fb_field(meta, batch, 3) is not None:
            raise CodecError("compressed Arrow buffers are refused")
        if body < 0 or pos + body > end:
            raise CodecError("malformed Arrow stream: a body runs past the end")
        pos += body
    if pos != end:
        raise CodecError("malformed Arrow stream: trailing bytes")


def _arrow_decode(data: bytes, kind: str) -> Any:
    pyarrow = _pyarrow()
    _require("pandas", "to read a DataFrame")
    _arrow_check_uncompressed(data)
    table = pyarrow.ipc.open_stream(pyarrow.py_buffer(data)).read_all()
    # Every row costs at least one bit of payload, except for types that need no buffers
    # (null, run-end encoded): a bound that stops those from expanding without limit.
    if table.num_rows > 8 * len(data) + 64:
        raise CodecError("Arrow payload claims far more rows than its size allows")
    table.validate(full=True)
    raw_meta = (table.schema.metadata or {}).get(_ARROW_META_KEY)
    meta = json.loads(raw_meta.decode("utf-8")) if raw_meta else {}
    if not isinstance(meta, dict) or meta.get("kind", kind) != kind:
        raise CodecError("Arrow payload metadata does not match the announced kind")
    frame = table.to_pandas()
    if kind == KIND_SERIES:
        if frame.shape[1] != 1:
            raise CodecError("an Arrow payload for a Series must hold exactly one column")
        series = frame.iloc[:, 0]
        name = meta.get("series_name")
        if name is not None and not isinstance(name, (bool, int, float, str)):
            raise CodecError("malformed Series name in Arrow metadata")
        series.name = name
        return series
    return frame


# -- pandas-npy: DataFrames without pyarrow -------------------------------------------


class _Blobs:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, data: bytes) -> list[int]:
        self.parts.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _json_scalar(value: object, what: str) -> object:
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CodecError(
        f"{what} {value!r:.60} is a {type_name(value)}; without pyarrow only str, int, "
        "float, bool or None labels are supported."
    )


def _column_encode(pandas: Any, numpy: Any, series: Any, blobs: _Blobs, label: str) -> Any:
    dtype = series.dtype
    if isinstance(dtype, pandas.CategoricalDtype):
        categories = pandas.Series(dtype.categories)
        return {
            "enc": "categorical",
            "codes": blobs.add(_npy_encode(series.cat.codes.to_numpy())),
            "categories": _column_encode(pandas, numpy, categories, blobs, label),
            "ordered": bool(dtype.ordered),
        }
    if isinstance(dtype, pandas.DatetimeTZDtype):
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None)
        return {
            "enc": "datetimetz",
            "values": blobs.add(_npy_encode(utc.to_numpy())),
            "tz": str(dtype.tz),
        }
    if isinstance(dtype, numpy.dtype) and dtype.kind in _NUMERIC_KINDS:
        return {"enc": "npy", "values": blobs.add(_npy_encode(series.to_numpy()))}
    if isinstance(dtype, pandas.StringDtype):
        values = [v if isinstance(v, str) else None for v in series.tolist()]
        name = "str" if dtype.na_value is not pandas.NA else "string"
        return {"enc": "strings", "dtype": name, "values": blobs.add(_json_encode(values))}
    if str(dtype) in _MASKED_DTYPES:
        fill = False if str(dtype) == "boolean" else 0
        data = series.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        return {
            "enc": "masked",
            "dtype": str(dtype),
            "values": blobs.add(_npy_encode(data)),
            "mask": blobs.add(_npy_encode(series.isna().to_numpy())),
        }
    if isinstance(dtype, numpy.dtype) and dtype.kind == "O":
        values = series.tolist()
        check_json(values, f"column {label}")
        return {"enc": "json", "values": blobs.add(_json_encode(values))}
    raise CodecError(
        f"column {label} has dtype {dtype}, which cannot be sent without pyarrow "
        "(install pyarrow on both sides for full dtype support)."
    )


def _frame_encode(value: Any, kind: str) -> bytes:
    pandas = _require("pandas", "to send a DataFrame")
    numpy = _require("numpy", "to send a DataFrame")
    blobs = _Blobs()
    header: dict[str, Any] = {"kind": kind, "nrows": len(value)}
    if kind == KIND_SERIES:
        header["series_name"] = _series_name(value)
        frame = value.to_frame(name="values")
    else:
        frame = value
        _check_labels(frame)
        if frame.columns.nlevels != 1:
            raise CodecError("MultiIndex columns need pyarrow; flatten them first.")
        header["labels"] = [_json_scalar(c, "column label") for c in frame.columns]
        if type(frame.columns) is pandas.RangeIndex:
            header["labels_range"] = True
        header["labels_name"] = _json_scalar(frame.columns.name, "columns name")
    header["columns"] = [
        _column_encode(pandas, numpy, frame.iloc[:, i], blobs, repr(label)[:60])
        for i, label in enumerate(frame.columns)
    ]
    index = frame.index
    if type(index) is pandas.RangeIndex:
        header["index"] = {
            "range": [index.start, index.stop, index.step],
            "name": _json_scalar(index.name, "index name"),
        }
    else:
        header["index"] = {
            "levels": [
                _column_encode(
                    pandas,
                    numpy,
                    pandas.Series(index.get_level_values(i)),
                    blobs,
                    f"index level {i}",
                )
                for i in range(index.nlevels)
            ],
            "names": [_json_scalar(n, "index name") for n in index.names],
        }
    head = _json_encode(header)
    return b"".join([_FRAME_MAGIC, struct.pack("<Q", len(head)), head, *blobs.parts])


def _blob(blobs: bytes, ref: Any) -> bytes:
    if (
        not isinstance(ref, list)
        or len(ref) != 2
        or not all(isinstance(x, int) and not isinstance(x, bool) for x in ref)
        or ref[0] < 0
        or ref[1] < 0
        or ref[0] + ref[1] > len(blobs)
    ):
        raise CodecError("malformed pandas-npy payload: bad blob reference")
    return blobs[ref[0] : ref[0] + ref[1]]


def _column_decode(pandas: Any, desc: Any, blobs: bytes, depth: int = 0) -> Any:
    if not isinstance(desc, dict) or depth > 2:
        raise CodecError("malformed pandas-npy payload: bad column description")
    enc = desc.get("enc")
    if enc == "npy":
        array = _npy_decode(_blob(blobs, desc.get("values")))
        if array.ndim != 1 or array.dtype.kind not in _NUMERIC_KINDS:
            raise CodecError("malformed pandas-npy payload: bad column array")
        return pandas.Series(array)
    if enc == "datetimetz":
        array = _npy_decode(_blob(blobs, desc.get("values")))
        tz = desc.get("tz")
        if array.ndim != 1 or array.dtype.kind != "M" or not isinstance(tz, str):
            raise CodecError("malformed pandas-npy payload: bad datetime column")
        return pandas.Series(array).dt.tz_localize("UTC").dt.tz_convert(tz)
    if enc == "categorical":
        codes = _npy_decode(_blob(blobs, desc.get("codes")))
        if codes.ndim != 1 or codes.dtype.kind != "i":
            raise CodecError("malformed pandas-npy payload: bad categorical codes")
        categories = _column_decode(pandas, desc.get("categories"), blobs, depth + 1)
        ordered = desc.get("ordered") is True
        values = pandas.Categorical.from_codes(
            codes, categories=pandas.Index(categories), ordered=ordered
        )
        return pandas.Series(values)
    if enc == "strings":
        values = _json_decode(_blob(blobs, desc.get("values")))
        dtype = desc.get("dtype")
        if (
            not isinstance(values, list)
            or dtype not in ("str", "string")
            or not all(v is None or isinstance(v, str) for v in values)
        ):
            raise CodecError("malformed pandas-npy payload: bad string column")
        return pandas.Series(values, dtype=dtype)
    if enc == "masked":
        dtype = desc.get("dtype")
        data = _npy_decode(_blob(blobs, desc.get("values")))
        mask = _npy_decode(_blob(blobs, desc.get("mask")))
        if (
            dtype not in _MASKED_DTYPES
            or data.ndim != 1
            or data.dtype.kind not in "biuf"
            or mask.dtype.kind != "b"
            or mask.shape != data.shape
        ):
            raise CodecError("malformed pandas-npy payload: bad nullable column")
        return pandas.Series(data).astype(dtype).mask(mask)
    if enc == "json":
        values = _json_decode(_blob(blobs, desc.get("values")))
        if not isinstance(values, list):
            raise CodecError("malformed pandas-npy payload: bad object column")
        return pandas.Series(values, dtype=object)
    raise CodecError(f"malformed pandas-npy payload: unknown column encoding {enc!r:.40}")


def _frame_decode(data: bytes, kind: str) -> Any:
    pandas = _require("pandas", "to read a DataFrame")
    _require("numpy", "to read a DataFrame")
    start = len(_FRAME_MAGIC) + 8
    if not data.startswith(_FRAME_MAGIC) or len(data) < start:
        raise CodecError("malformed pandas-npy payload: bad magic")
    head_len = struct.unpack_from("<Q", data, len(_FRAME_MAGIC))[0]
    if head_len > len(data) - start:
        raise CodecError("malformed pandas-npy payload: header runs past the end")
    header = _json_decode(data[start : start + head_len])
    blobs = data[start + head_len :]
    if not isinstance(header, dict) or header.get("kind") != kind:
        raise CodecError("malformed pandas-npy payload: header does not match the kind")
    nrows = header.get("nrows")
    descs = header.get("columns")
    if not isinstance(nrows, int) or not isinstance(descs, list):
        raise CodecError("malformed pandas-npy payload: bad header")
    columns = [_column_decode(pandas, d, blobs) for d in descs]
    spec = header.get("index")
    if not isinstance(spec, dict):
        raise CodecError("malformed pandas-npy payload: bad index")
    if "range" in spec:
        bounds = spec["range"]
        if not (
            isinstance(bounds, list) and len(bounds) == 3 and all(type(b) is int for b in bounds)
        ):
            raise CodecError("malformed pandas-npy payload: bad range index")
        index = pandas.RangeIndex(*bounds, name=_scalar_or_fail(spec.get("name")))
    else:
        levels = spec.get("levels")
        names = spec.get("names")
        if not isinstance(levels, list) or not isinstance(names, list) or len(levels) != len(names):
            raise CodecError("malformed pandas-npy payload: bad index")
        arrays = [_column_decode(pandas, d, blobs) for d in levels]
        names = [_scalar_or_fail(n) for n in names]
        if len(arrays) == 1:
            index = pandas.Index(arrays[0], name=names[0])
        else:
            index = pandas.MultiIndex.from_arrays(arrays, names=names)
    if len(index) != nrows or any(len(c) != nrows for c in columns):
        raise CodecError("malformed pandas-npy payload: column lengths differ")
    for column in columns:
        column.index = index
    if kind == KIND_SERIES:
        if len(columns) != 1:
            raise CodecError("malformed pandas-npy payload: a Series needs one column")
        series = columns[0]
        series.name = _scalar_or_fail(header.get("series_name"))
        return series
    labels = header.get("labels")
    if not isinstance(labels, list) or len(labels) != len(columns):
        raise CodecError("malformed pandas-npy payload: bad column labels")
    labels = [_scalar_or_fail(label) for label in labels]
    if columns:
        frame = pandas.concat(columns, axis=1, keys=range(len(columns)))
    else:
        frame = pandas.DataFrame(index=index)
    labels_name = _scalar_or_fail(header.get("labels_name"))
    if header.get("labels_range") is True and all(type(x) is int for x in labels):
        frame.columns = pandas.RangeIndex(len(labels), name=labels_name)
        if labels != list(range(len(labels))):
            frame.columns = pandas.Index(labels, name=labels_name)
    else:
        frame.columns = pandas.Index(labels, name=labels_name)
    return frame


def _scalar_or_fail(value: object) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CodecError("malformed pandas-npy payload: a label is not a scalar")


# -- encode / decode -------------------------------------------------------------------


def encode(value: object, label: str, formats: Any) -> tuple[str, str, bytes]:
    """Encode a value in the first format of its kind that `formats` allows.

    Returns ``(format, kind, payload)``.
    """
    kind = classify(value, label)
    usable = [f for f in FORMATS_BY_KIND[kind] if f in formats]
    if not usable:
        needs = {
            KIND_NDARRAY: "numpy",
            KIND_DATAFRAME: "pandas and numpy",
            KIND_SERIES: "pandas and numpy",
        }.get(kind, "json")
        raise CodecError(
            f"{label} is a {type_name(value)}, but the receiving side cannot read it: "
            f"it needs {needs} there."
        )
    errors: list[str] = []
    for fmt in usable:  # e.g. complex columns: Arrow refuses, pandas-npy carries them
        try:
            if fmt == FORMAT_JSON:
                data = _json_encode(value)
            elif fmt == FORMAT_NPY:
                data = _npy_encode(value)
            elif fmt == FORMAT_ARROW:
                data = _arrow_encode(value, kind)
            else:
                data = _frame_encode(value, kind)
        except CodecError as exc:
            errors.append(str(exc))
            continue
        return fmt, kind, data
    raise CodecError(errors[0])


def decode(fmt: object, kind: object, data: bytes) -> object:
    """Decode a payload with the safe reader of its format and check the result's type."""
    if fmt not in FORMATS:
        raise CodecError(
            f"payload format {fmt!r:.40} is refused; accepted formats: {', '.join(FORMATS)}."
        )
    if not isinstance(kind, str) or fmt not in FORMATS_BY_KIND.get(kind, ()):
        raise CodecError(f"payload kind {kind!r:.40} does not go with format {fmt}.")
    try:
        if fmt == FORMAT_JSON:
            value = _json_decode(data)
        elif fmt == FORMAT_NPY:
            value = _npy_decode(data)
        elif fmt == FORMAT_ARROW:
            value = _arrow_decode(data, kind)
        else:
            value = _frame_decode(data, kind)
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(
            f"malformed {fmt} payload ({type(exc).__name__}: {str(exc)[:200]})"
        ) from None
    _check_decoded(value, kind)
    return value


def _check_decoded(value: object, kind: str) -> None:
    if kind == KIND_JSON:
        return  # json.loads builds JSON types only
    actual = classify(value, "the decoded value")
    if actual != kind:
        raise CodecError(f"payload announced a {kind} but decoded to a {type_name(value)}")


# -- chunks on the wire ----------------------------------------------------------------


def pack_chunk(piece: bytes, compress: bool) -> tuple[str, str]:
    """``(base64 text, compression)`` of one chunk: zlib level 1 when it saves 10 %."""
    if compress and piece:
        zlib = _module("zlib")
        if zlib is not None:
            packed = zlib.compress(piece, 1)
            if len(packed) < 0.9 * len(piece):
                return base64.b64encode(packed).decode("ascii"), "zlib"
    return base64.b64encode(piece).decode("ascii"), "none"


def unpack_chunk(text: str, compression: object, expected: int) -> bytes:
    """The raw bytes of one chunk, which must be exactly `expected` long.

    Decompression stops after `expected` bytes, so a hostile chunk cannot expand further.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise CodecError("a chunk is not valid base64") from None
    if compression == "zlib":
        zlib = _require("zlib", "to read a compressed chunk")
        inflater = zlib.decompressobj()
        try:
            data = inflater.decompress(data, expected)
        except zlib.error:
            raise CodecError("a compressed chunk is corrupt") from None
        if not inflater.eof or inflater.unconsumed_tail or inflater.unused_data:
            raise CodecError("a compressed chunk does not have the announced size")
    elif compression != "none":
        raise CodecError(f"chunk compression {compression!r:.40} is not accepted")
    if len(data) != expected:
        raise CodecError(f"a chunk has {len(data)} bytes, expected {expected}")
    return data


# -- sandbox-side entry points ---------------------------------------------------------
# Called by the code that `sandbox_magic.transfer.remote` generates, with the user's
# namespace (`globals()` of the kernel) as `ns`.


def _emit(ns: dict[str, Any], marker: dict[str, Any]) -> None:
    """Display `marker` as this run's answer, and drop the run's code from the history."""
    _scrub_history(ns, ENTRY_NAME)
    _speed_up_kernel(ENTRY_NAME)
    marker.setdefault("protocol", PROTOCOL)
    marker.setdefault("version", PROTOCOL_VERSION)
    ipython_display = _module("IPython.display")
    if ipython_display is None:
        raise RuntimeError("sandbox_magic transfers need an IPython kernel in the sandbox")
    summary = f"sandbox_magic transfer: {marker.get('op')} {marker.get('status')}"
    ipython_display.display({MIME_TYPE: marker, "text/plain": summary}, raw=True)


def _store(ns: dict[str, Any]) -> dict[str, Any]:
    store = ns.get(STORE_NAME)
    if not isinstance(store, dict):
        store = ns[STORE_NAME] = {}
    return store


def _drop(ns: dict[str, Any], tid: str) -> None:
    store = _store(ns)
    store.pop(tid, None)
    if not store:
        ns.pop(STORE_NAME, None)


def _speed_up_kernel(token: str) -> None:
    """Let ipykernel skip its pure-Python hash of transfer snippets (best effort).

    ipykernel names every cell after a murmur2 hash of its source, computed in pure
    Python: a few seconds for a 5 MB snippet, most of a push's cost. Snippets (and
    only they: they start with ``def <token>``) get a fixed name instead, so each
    also replaces the previous one in ``linecache`` rather than piling up there.
    """
    try:
        compiler = sys.modules["IPython"].get_ipython().compile
        if getattr(compiler, "_sandbox_magic_names", False):
            return
        original = compiler.get_code_name
        prefix = "def " + token

        def get_code_name(raw_code: str, code: str, number: int) -> str:
            if raw_code.startswith(prefix):
                return "<sandbox_magic transfer>"
            return str(original(raw_code, code, number))

        compiler.get_code_name = get_code_name
        compiler._sandbox_magic_names = True
    except Exception:
        pass


def _scrub_history(ns: dict[str, Any], token: str) -> None:
    """Drop transfer code (with its payload) from IPython's input history, best effort."""
    placeholder = "# sandbox_magic transfer (code removed from history)"
    prefix = "def " + token

    def scrub(text: object) -> bool:
        return isinstance(text, str) and text.startswith(prefix)

    try:
        ipython = sys.modules["IPython"].get_ipython()
        history = ipython.history_manager
    except Exception:
        history = None
    if history is not None:
        for entries in (history.input_hist_parsed, history.input_hist_raw):
            for i in range(max(0, len(entries) - 3), len(entries)):
                if scrub(entries[i]):
                    entries[i] = placeholder
        for attr in ("_i00", "_i", "_ii", "_iii"):
            if scrub(getattr(history, attr, None)):
                setattr(history, attr, placeholder)
        try:
            with history.db_input_cache_lock:
                history.db_input_cache[:] = [
                    (n, placeholder, placeholder) if scrub(raw) else (n, src, raw)
                    for (n, src, raw) in history.db_input_cache
                ]
        except Exception:
            pass
    for key in list(ns):
        if key.startswith("_i") and scrub(ns[key]):
            ns[key] = placeholder
    linecache = sys.modules.get("linecache")
    cache = getattr(linecache, "cache", None)
    if isinstance(cache, dict):
        for filename, entry in list(cache.items()):
            lines = entry[2] if isinstance(entry, tuple) and len(entry) > 2 else None
            if lines and scrub(lines[0]):
                cache.pop(filename, None)


def probe(ns: dict[str, Any], tid: str) -> None:
    """Report this side's capabilities."""
    _emit(ns, {"op": "probe", "status": "ok", "transfer_id": tid, "capabilities": capabilities()})


def pull_begin(
    ns: dict[str, Any],
    tid: str,
    name: str,
    accept: list[str],
    chunk_bytes: int,
    max_bytes: int,
    compress: bool,
) -> None:
    """Encode ``ns[name]``, keep the payload for the next runs, and emit chunk 0."""
    marker: dict[str, Any] = {"op": "pull", "transfer_id": tid, "name": name}
    try:
        if name not in ns:
            raise CodecError(f"{name!r} is not defined in the sandbox")
        formats = [f for f in accept if f in capabilities()["formats"]]
        fmt, kind, data = encode(ns[name], name, formats)
        if len(data) > max_bytes:
            raise CodecError(
                f"{name} is {human_size(len(data))} once encoded as {fmt}, over the "
                f"limit of {human_size(max_bytes)} (max_bytes)"
            )
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    _store(ns)[tid] = {
        "data": data,
        "chunk_bytes": chunk_bytes,
        "total_chunks": max(1, -(-len(data) // chunk_bytes)),
        "format": fmt,
        "kind": kind,
        "type": type_name(ns[name]),
        "sha256": sha256_hex(data),
        "name": name,
        "compress": compress,
    }
    pull_chunk(ns, tid, 0)


def pull_chunk(ns: dict[str, Any], tid: str, index: int) -> None:
    """Emit chunk `index` of a pull; the last one releases the payload."""
    entry = _store(ns).get(tid)
    marker: dict[str, Any] = {"op": "pull", "transfer_id": tid}
    if entry is None:
        marker.update(status="error", error="the transfer expired in the sandbox (restarted?)")
        _emit(ns, marker)
        return
    size, total = entry["chunk_bytes"], entry["total_chunks"]
    piece = entry["data"][index * size : (index + 1) * size]
    text, compression = pack_chunk(piece, entry["compress"])
    marker.update(
        status="ok",
        name=entry["name"],
        format=entry["format"],
        kind=entry["kind"],
        type=entry["type"],
        encoding="base64",
        compression=compression,
        chunk=index,
        total_chunks=total,
        size=len(entry["data"]),
        sha256=entry["sha256"],
        data=text,
    )
    if index >= total - 1:
        _drop(ns, tid)
    _emit(ns, marker)


def push_chunk(
    ns: dict[str, Any], tid: str, index: int, text: str, compression: str, size: int
) -> None:
    """Append chunk `index` (base64, maybe compressed, `size` bytes raw) to a push's buffer."""
    store = _store(ns)
    entry = store.setdefault(tid, {"buffer": bytearray(), "next": 0})
    marker: dict[str, Any] = {"op": "push-chunk", "transfer_id": tid, "chunk": index}
    try:
        if entry["next"] != index:
            raise CodecError("push chunks arrived out of order")
        entry["buffer"].extend(unpack_chunk(text, compression, size))
        entry["next"] = index + 1
        marker.update(status="ok", received=len(entry["buffer"]))
    except CodecError as exc:
        _drop(ns, tid)
        marker.update(status="error", error=str(exc))
    _emit(ns, marker)


def push_finish(
    ns: dict[str, Any],
    tid: str,
    name: str,
    fmt: str,
    kind: str,
    size: int,
    digest: str,
    total_chunks: int,
) -> None:
    """Check the assembled payload, decode it and bind it to `name`."""
    entry = _store(ns).get(tid)
    _drop(ns, tid)
    marker: dict[str, Any] = {"op": "push", "transfer_id": tid, "name": name}
    try:
        if entry is None or entry["next"] != total_chunks:
            raise CodecError("the pushed chunks are incomplete (was the sandbox restarted?)")
        data = bytes(entry["buffer"])
        entry["buffer"] = bytearray()
        if len(data) != size or sha256_hex(data) != digest:
            raise CodecError("the pushed payload arrived damaged (size or sha256 mismatch)")
        value = decode(fmt, kind, data)
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    _bind(ns, marker, name, kind, value, size, digest)


def _bind(
    ns: dict[str, Any],
    marker: dict[str, Any],
    name: str,
    kind: str,
    value: object,
    size: int,
    digest: str,
) -> None:
    """Bind a checked, decoded push to `name` and confirm it."""
    ns[name] = value
    shape = getattr(value, "shape", None)
    marker.update(
        status="ok",
        kind=kind,
        type=type_name(value),
        shape=list(shape) if isinstance(shape, tuple) else None,
        size=size,
        sha256=digest,
    )
    _emit(ns, marker)


def discard(ns: dict[str, Any], tid: str) -> None:
    """Forget a transfer's buffer (after a failure on the client side)."""
    _drop(ns, tid)
    _emit(ns, {"op": "discard", "status": "ok", "transfer_id": tid})


# -- transfers through files (servers with raw file endpoints) -------------------------


def _remove(path: str) -> bool:
    try:
        os.remove(path)
    except OSError:
        return False
    return True


def push_file(
    ns: dict[str, Any],
    tid: str,
    path: str,
    name: str,
    fmt: str,
    kind: str,
    size: int,
    digest: str,
) -> None:
    """Read a pushed payload from `path` (then delete it), check, decode and bind it."""
    marker: dict[str, Any] = {"op": "push", "transfer_id": tid, "name": name}
    try:
        try:
            with open(path, "rb") as handle:
                data = handle.read(size + 1)
        except OSError as exc:
            raise CodecError("the pushed file cannot be read (" + str(exc.strerror) + ")") from None
        finally:
            _remove(path)
        if len(data) != size or sha256_hex(data) != digest:
            raise CodecError("the pushed payload arrived damaged (size or sha256 mismatch)")
        value = decode(fmt, kind, data)
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    _bind(ns, marker, name, kind, value, size, digest)


def pull_file(
    ns: dict[str, Any], tid: str, name: str, accept: list[str], max_bytes: int, path: str
) -> None:
    """Encode ``ns[name]`` into a new private file at `path`; announce its size and sha256."""
    marker: dict[str, Any] = {"op": "pull-file", "transfer_id": tid, "name": name}
    try:
        if name not in ns:
            raise CodecError(f"{name!r} is not defined in the sandbox")
        formats = [f for f in accept if f in capabilities()["formats"]]
        fmt, kind, data = encode(ns[name], name, formats)
        if len(data) > max_bytes:
            raise CodecError(
                f"{name} is {human_size(len(data))} once encoded as {fmt}, over the "
                f"limit of {human_size(max_bytes)} (max_bytes)"
            )
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(path, flags, 0o600), "wb") as handle:
                handle.write(data)
        except OSError as exc:
            _remove(path)
            raise CodecError("cannot write the transfer file (" + str(exc.strerror) + ")") from None
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    marker.update(
        status="ok",
        format=fmt,
        kind=kind,
        type=type_name(ns[name]),
        size=len(data),
        sha256=sha256_hex(data),
    )
    _emit(ns, marker)


def remove_file(ns: dict[str, Any], tid: str, path: str) -> None:
    """Delete a transfer's file (after a pull, or a failure on the client side)."""
    _remove(path)
    _emit(ns, {"op": "discard", "status": "ok", "transfer_id": tid})
