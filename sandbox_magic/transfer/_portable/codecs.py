"""The format codecs: JSON, NumPy ``.npy``, Arrow IPC and pandas-npy, and the chunks
that carry their bytes."""

from __future__ import annotations

import base64
import io
import json
import math
import struct
from typing import Any

from sandbox_magic.transfer._portable.arrow_guard import _arrow_check_uncompressed
from sandbox_magic.transfer._portable.base import (
    FORMAT_ARROW,
    FORMAT_JSON,
    FORMAT_NPY,
    FORMATS,
    FORMATS_BY_KIND,
    KIND_DATAFRAME,
    KIND_JSON,
    KIND_NDARRAY,
    KIND_SERIES,
    MIN_PYARROW,
    CodecError,
    _module,
    _require,
    _version_tuple,
    check_json,
    classify,
    type_name,
)

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
