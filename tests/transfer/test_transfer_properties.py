"""Property tests: JSON values round-trip, and damaged payloads never pass silently."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sandbox_magic.transfer import (
    MIME_TYPE,
    PullAssembler,
    TransferError,
    classify,
    decode_value,
    encode_value,
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


def same_json(a: object, b: object) -> bool:
    """Equality that also holds for NaN and tells 0.0 from -0.0 and 1 from 1.0."""
    return json.dumps(a) == json.dumps(b) and _types(a) == _types(b)


def _types(value: object) -> object:
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    return type(value).__name__


@given(json_values)
@settings(deadline=None, max_examples=300)
def test_json_values_round_trip_through_the_codec(value: object) -> None:
    encoded = encode_value(value)
    assert encoded.format == "json"
    assert same_json(decode_value(encoded.format, encoded.kind, encoded.data), value)


def _payloads() -> list[tuple[object, Any]]:
    frame = pd.DataFrame({"a": [1.5, None], "s": ["x", "y"], "c": pd.Categorical(["u", "v"])})
    return [
        ({"k": [1, 2, "three"], "n": None}, None),
        (np.arange(12, dtype=np.int32).reshape(3, 4), None),
        (frame, ["arrow"]),
        (frame, ["pandas-npy"]),
        (pd.Series([1, 2, 3], name="s"), ["arrow"]),
    ]


PAYLOADS = _payloads()


def _marker(assembler: PullAssembler, fmt: str, kind: str, data: bytes, sha: str) -> Any:
    return {
        MIME_TYPE: {
            "protocol": "sandbox-magic-transfer",
            "version": 1,
            "transfer_id": assembler.transfer_id,
            "op": "pull",
            "status": "ok",
            "format": fmt,
            "kind": kind,
            "encoding": "base64",
            "chunk": 0,
            "total_chunks": 1,
            "size": len(data),
            "sha256": sha,
            "data": base64.b64encode(data).decode(),
        }
    }


def _mutate(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    raw = bytearray(data)
    for position, value in edits:
        raw[position % len(raw)] = value
    return bytes(raw)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)


@pytest.mark.parametrize(("value", "formats"), PAYLOADS, ids=lambda p: type(p).__name__)
@given(edits=edits)
@settings(
    deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_mutated_payload_is_refused_or_identical(
    value: object, formats: Any, edits: list[tuple[int, int]]
) -> None:
    encoded = encode_value(value, formats=formats)
    mutated = _mutate(encoded.data, edits)
    assembler = PullAssembler("v")
    bundle = _marker(assembler, encoded.format, encoded.kind, mutated, encoded.sha256)
    if mutated == encoded.data:
        assembler.feed([bundle])
        assert assembler.done
        return
    with pytest.raises(TransferError, match="sha256 does not match"):
        assembler.feed([bundle])


@pytest.mark.parametrize(("value", "formats"), PAYLOADS, ids=lambda p: type(p).__name__)
@given(edits=edits)
@settings(
    deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_mutated_payload_without_a_digest_decodes_safely_or_fails_cleanly(
    value: object, formats: Any, edits: list[tuple[int, int]]
) -> None:
    """Even when the sandbox recomputes the sha256, readers only ever raise TransferError,
    and what they return is of the announced kind."""
    encoded = encode_value(value, formats=formats)
    try:
        back = decode_value(encoded.format, encoded.kind, _mutate(encoded.data, edits))
    except TransferError:
        return
    assert classify(back) == encoded.kind
