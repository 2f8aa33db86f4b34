"""The local codec: round trips per format, and refusals with readable messages."""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sandbox_magic.client import SandboxError
from sandbox_magic.transfer import (
    TransferError,
    check_name,
    classify,
    decode_value,
    encode_value,
    local_formats,
    parse_names,
)
from sandbox_magic.transfer._portable.arrow_guard import _arrow_check_uncompressed


def mixed_frame() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [1.5, np.nan, 0.1 + 0.2],
            "s": ["a", None, "c"],
            "d": pd.to_datetime(["2020-01-01", None, "2021-05-05"]),
            "dz": pd.to_datetime(
                ["2020-01-01 00:00", "2020-03-29 01:30", "2020-10-25 09:00"]
            ).tz_localize("Europe/Paris"),
            "c": pd.Categorical(["x", "y", "x"]),
            "co": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
            "b": [True, False, True],
            "td": pd.to_timedelta([1, 2, 3], unit="s"),
            "ni": pd.array([1, None, 3], dtype="Int64"),
            "nb": pd.array([True, None, False], dtype="boolean"),
            "ss": pd.array(["p", None, "q"], dtype="string"),
            "u8": np.array([1, 2, 255], dtype=np.uint8),
        },
        index=pd.Index([10, 20, 30], name="idx"),
    )
    frame.columns.name = "cols"
    return frame


def roundtrip(value: object, formats: list[str] | None = None) -> tuple[str, object]:
    encoded = encode_value(value, formats=formats)
    return encoded.format, decode_value(encoded.format, encoded.kind, encoded.data)


# -- round trips ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["arrow", "pandas-npy"])
def test_dataframe_with_mixed_dtypes_round_trips_exactly(fmt: str) -> None:
    frame = mixed_frame()
    used, back = roundtrip(frame, [fmt])
    assert used == fmt
    pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["arrow", "pandas-npy"])
def test_multiindex_rows_round_trip(fmt: str) -> None:
    frame = mixed_frame().set_index(["i", "c"])
    _, back = roundtrip(frame, [fmt])
    pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["arrow", "pandas-npy"])
@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1.0, None, 3.5], name="price"),
        pd.Series(["a", "b"], name=None),
        pd.Series([1, 2], name=7, index=pd.date_range("2024-01-01", periods=2, tz="UTC")),
        pd.Series(pd.Categorical(["u", "v", "u"]), name="cat"),
    ],
)
def test_series_round_trips_with_its_name(fmt: str, series: pd.Series) -> None:
    _, back = roundtrip(series, [fmt])
    assert isinstance(back, pd.Series)
    pd.testing.assert_series_equal(back, series, check_freq=False)


@pytest.mark.parametrize("fmt", ["arrow", "pandas-npy"])
@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame(),
        pd.DataFrame(columns=["a", "b"]),
        pd.DataFrame(np.arange(6.0).reshape(3, 2)),
        pd.DataFrame({"a": range(5)}).iloc[1:4],
    ],
)
def test_edge_shaped_frames_round_trip(fmt: str, frame: pd.DataFrame) -> None:
    _, back = roundtrip(frame, [fmt])
    pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]


def test_columns_arrow_cannot_carry_fall_back_to_pandas_npy() -> None:
    frame = pd.DataFrame(
        {"z": np.array([1 + 2j, 3j]), "o": pd.array([1, "two"], dtype=object)},
    )
    used, back = roundtrip(frame)
    assert used == "pandas-npy"
    pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.int64).reshape(3, 4),
        np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4)),
        np.array([1.5, np.nan, np.inf]),
        np.array([True, False]),
        np.array([1 + 2j]),
        np.array(["2024-01-01", "NaT"], dtype="datetime64[ns]"),
        np.array([1, 2], dtype="timedelta64[s]"),
        np.array(["héllo", "x"]),
        np.array([b"ab", b"c"]),
        np.zeros((2, 0, 3), dtype=np.uint16),
        np.array(5.0),
        np.zeros(3, dtype=[("x", "<i4"), ("y", "<f8")]),
        np.arange(10)[::3],
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
def test_numpy_arrays_round_trip(array: np.ndarray[Any, Any]) -> None:
    used, back = roundtrip(array)
    assert used == "npy"
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**70), 1.25, "ünï", [], {}, {"a": [1, {"b": None}], "c": "d"}],
)
def test_json_values_round_trip(value: object) -> None:
    used, back = roundtrip(value)
    assert used == "json"
    assert back == value
    assert type(back) is type(value)


def test_local_formats_follow_installed_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(local_formats()) == {"json", "npy", "pandas-npy", "arrow"}
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    assert "arrow" not in local_formats()
    assert roundtrip(mixed_frame())[0] == "pandas-npy"


# -- refusals ---------------------------------------------------------------------------


def test_transfer_error_is_a_sandbox_error() -> None:
    assert issubclass(TransferError, SandboxError)


def test_object_arrays_are_refused_on_encode() -> None:
    with pytest.raises(TransferError, match="object arrays would need pickle"):
        encode_value(np.array([{"a": 1}, None], dtype=object), name="arr")


def test_object_npy_payload_is_refused_before_reading() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([1, "x"], dtype=object), allow_pickle=True)
    with pytest.raises(TransferError, match="object arrays need pickle"):
        decode_value("npy", "ndarray", buffer.getvalue())


def test_pickle_format_marker_is_refused() -> None:
    with pytest.raises(TransferError, match="format 'pickle' is refused"):
        decode_value("pickle", "dataframe", pickle.dumps(pd.DataFrame({"a": [1]})))


@pytest.mark.parametrize(
    ("fmt", "kind"), [("npy", "ndarray"), ("arrow", "dataframe"), ("json", "json")]
)
@pytest.mark.parametrize("protocol", [2, 5])
def test_pickle_bytes_under_a_safe_format_are_refused(fmt: str, kind: str, protocol: int) -> None:
    payload = pickle.dumps(np.arange(3), protocol=protocol)
    with pytest.raises(TransferError, match="Cannot read"):
        decode_value(fmt, kind, payload)


def test_kind_that_does_not_match_the_format_is_refused() -> None:
    encoded = encode_value([1, 2])
    with pytest.raises(TransferError, match="does not go with format json"):
        decode_value("json", "dataframe", encoded.data)


def test_payload_that_decodes_to_another_type_is_refused() -> None:
    series = encode_value(pd.Series([1, 2], name="a"), formats=["pandas-npy"])
    hacked = series.data.replace(b'"kind":"series"', b'"kind":"dataframe"')
    with pytest.raises(TransferError):
        decode_value("pandas-npy", "dataframe", hacked)


def test_npy_whose_header_lies_about_its_size_is_refused() -> None:
    data = encode_value(np.arange(10)).data
    with pytest.raises(TransferError, match="length does not match"):
        decode_value("npy", "ndarray", data[:-8])
    header = io.BytesIO()
    header_fields = {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    np.lib.format.write_array_header_1_0(header, header_fields)
    with pytest.raises(TransferError, match="length does not match"):
        decode_value("npy", "ndarray", header.getvalue() + b"\0" * 64)


def test_compressed_arrow_streams_are_refused() -> None:
    import pyarrow as pa

    table = pa.Table.from_pandas(pd.DataFrame({"a": np.zeros(1000)}))
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    with pytest.raises(TransferError, match="compressed Arrow buffers are refused"):
        decode_value("arrow", "dataframe", sink.getvalue().to_pybytes())


def test_uncompressed_arrow_stream_passes_the_compression_check() -> None:
    _arrow_check_uncompressed(encode_value(mixed_frame(), formats=["arrow"]).data)


def test_arrow_null_column_claiming_huge_length_is_refused() -> None:
    import pyarrow as pa

    batch = pa.RecordBatch.from_arrays([pa.nulls(10_000_000)], names=["n"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    with pytest.raises(TransferError, match="more rows than its size allows"):
        decode_value("arrow", "dataframe", sink.getvalue().to_pybytes())


def test_oversized_value_names_size_and_limit() -> None:
    with pytest.raises(TransferError) as info:
        encode_value(np.zeros(300_000), name="big", max_bytes=1_000_000)
    message = str(info.value)
    assert "big" in message
    assert "2.3 MiB" in message
    assert "976.6 KiB" in message
    assert "max_bytes" in message
    with pytest.raises(TransferError, match="over the limit"):
        encode_value("x" * 2000, max_bytes=1000)
    with pytest.raises(TransferError, match="over the limit"):
        decode_value("json", "json", b"1" * 2000, max_bytes=1000)


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({1, 2}, "set"),
        ((1, 2), "tuple"),
        (object(), "object"),
        (b"raw", "bytes"),
        (np.float32(1.0), "numpy.float32"),
        ({"a": [1, {3, 4}]}, "set"),
        ({1: "x"}, "int"),
        (pd.Timestamp("2024-01-01"), "pandas.Timestamp"),
        (np.ma.masked_array([1, 2]), "numpy.MaskedArray"),
    ],
)
def test_unsupported_types_are_named_with_what_is_supported(value: object, named: str) -> None:
    with pytest.raises(TransferError) as info:
        encode_value(value, name="v")
    message = str(info.value)
    assert named in message
    if named not in ("int", "numpy.MaskedArray"):
        assert "Supported:" in message
        assert "pandas DataFrame and Series" in message


def test_unsupported_nested_value_says_where_it_is() -> None:
    with pytest.raises(TransferError, match=r"cfg\['a'\]\[1\] is a set"):
        classify({"a": [1, {3}]}, "cfg")


def test_circular_structures_are_refused() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    with pytest.raises(TransferError, match="Circular"):
        encode_value(loop)


def test_dataframe_with_mixed_label_types_or_duplicates_is_refused() -> None:
    with pytest.raises(TransferError, match="mix types"):
        encode_value(pd.DataFrame({"a": [1], 0: [2]}), formats=["arrow"])
    with pytest.raises(TransferError, match="duplicate column labels"):
        encode_value(pd.DataFrame([[1, 2]], columns=["a", "a"]))


@pytest.mark.parametrize(
    "name",
    ["", "1a", "a b", "a-b", "x;import os", "class", "None", "__class__", "globals", "a.b", 3],
)
def test_invalid_names_are_refused(name: object) -> None:
    with pytest.raises(TransferError, match=r"name|reserved"):
        check_name(name)


def test_names_are_parsed_from_the_option_value() -> None:
    assert parse_names("df, arr,df ,_x") == ["df", "arr", "_x"]
    with pytest.raises(TransferError, match="not a valid Python variable name"):
        parse_names("df,,x")
