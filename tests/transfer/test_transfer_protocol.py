"""Push and pull through the generated snippets, with an in-process stand-in sandbox.

The stand-in runs exactly the code a real sandbox would get; tests here tamper with
its answers to check that the client refuses anything inconsistent.
"""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import sys
import zlib
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from sandbox_magic.transfer import (
    MAX_CHUNK_BYTES,
    MIME_TYPE,
    PullAssembler,
    RemoteCapabilities,
    TransferError,
    encode_for_push,
    plan_push,
    pull,
    push,
    remote,
)
from sandbox_magic.transfer._portable import STORE_NAME, CodecError, unpack_chunk

if TYPE_CHECKING:
    from tests.transfer.conftest import InProcessSandbox


def markers(bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b[MIME_TYPE] for b in bundles if MIME_TYPE in b]


def test_push_then_pull_json_in_several_chunks(sandbox: InProcessSandbox) -> None:
    value = {"name": "ünï", "values": [1, 2.5, None, True], "nested": {"k": "v" * 50}}
    receipt = asyncio.run(push(sandbox.run_code, "cfg", value, chunk_bytes=16))
    assert len(sandbox.runs) == receipt.chunks + 1 > 4  # a probe first
    assert receipt.format == "json"
    assert sandbox.ns["cfg"] == value
    assert STORE_NAME not in sandbox.ns
    back = asyncio.run(pull(sandbox.run_code, "cfg", chunk_bytes=16))
    assert back == value
    assert STORE_NAME not in sandbox.ns


def test_push_embeds_values_only_as_base64(sandbox: InProcessSandbox) -> None:
    hostile = "'); import os; os.system('echo owned') #\"\"\"\n"
    codes = encode_for_push("s", hostile)
    assert all(hostile not in code and "os.system" not in code for code in codes)
    for code in codes:
        sandbox.run(code)
    assert sandbox.ns["s"] == hostile


def test_snippets_leave_no_helper_names_behind(sandbox: InProcessSandbox) -> None:
    asyncio.run(push(sandbox.run_code, "arr", np.arange(5), chunk_bytes=8))
    assert set(sandbox.ns) == {"__name__", "__builtins__", "arr"}


def test_user_names_shadowing_builtins_do_not_break_transfers(
    sandbox: InProcessSandbox,
) -> None:
    sandbox.ns.update(type="t", len=0, isinstance=None, str=1, json="j", bytes=None)
    asyncio.run(push(sandbox.run_code, "x", [1, "a"]))
    assert asyncio.run(pull(sandbox.run_code, "x")) == [1, "a"]


def test_push_uses_the_fallback_when_the_sandbox_lacks_pyarrow(
    sandbox: InProcessSandbox,
) -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]})
    caps = RemoteCapabilities("3.11.0", "2.0", "2.2", None, ("json", "npy", "pandas-npy"))
    receipt = asyncio.run(push(sandbox.run_code, "df", frame, remote_capabilities=caps))
    assert receipt.format == "pandas-npy"
    assert receipt.shape == (2, 2)
    pd.testing.assert_frame_equal(sandbox.ns["df"], frame)


def test_push_probes_the_sandbox_before_sending_a_dataframe(sandbox: InProcessSandbox) -> None:
    receipt = asyncio.run(push(sandbox.run_code, "df", pd.DataFrame({"a": [1]})))
    assert receipt.format == "arrow"
    assert len(sandbox.runs) == 2  # probe, then one chunk


def test_pull_of_an_undefined_name_says_so(sandbox: InProcessSandbox) -> None:
    with pytest.raises(TransferError, match="'nope' is not defined in the sandbox"):
        asyncio.run(pull(sandbox.run_code, "nope"))


def test_pull_of_an_unsupported_remote_type_names_it(sandbox: InProcessSandbox) -> None:
    sandbox.ns["s"] = {1, 2}
    with pytest.raises(TransferError, match="s is a set, which cannot be transferred"):
        asyncio.run(pull(sandbox.run_code, "s"))


def test_pull_over_the_limit_is_refused_in_the_sandbox(sandbox: InProcessSandbox) -> None:
    sandbox.ns["big"] = np.zeros(10_000)
    with pytest.raises(TransferError, match=r"78\..* KiB .*over the limit of 1000 bytes"):
        asyncio.run(pull(sandbox.run_code, "big", max_bytes=1000))


def test_bad_names_never_reach_generated_code() -> None:
    with pytest.raises(TransferError):
        PullAssembler("x; import os")
    with pytest.raises(TransferError):
        plan_push("a-b", 1)


@pytest.mark.parametrize("chunk_bytes", [0, -1, MAX_CHUNK_BYTES + 1])
def test_chunk_size_is_bounded(chunk_bytes: int) -> None:
    with pytest.raises(TransferError, match="chunk_bytes"):
        plan_push("x", 1, chunk_bytes=chunk_bytes)


def test_remote_exception_becomes_a_transfer_error(sandbox: InProcessSandbox) -> None:
    async def broken(code: str) -> list[dict[str, Any]]:
        return await sandbox.run_code("raise ValueError('kernel is odd')")

    with pytest.raises(TransferError, match="kernel is odd"):
        asyncio.run(pull(broken, "x"))


# -- tampering -------------------------------------------------------------------------


def _flip_payload_byte(bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for marker in markers(bundles):
        if "data" in marker:
            raw = bytearray(base64.b64decode(marker["data"]))
            raw[len(raw) // 2] ^= 0x01
            marker["data"] = base64.b64encode(bytes(raw)).decode()
    return bundles


def test_mutated_chunk_fails_the_sha256_check_and_frees_the_sandbox(
    sandbox: InProcessSandbox,
) -> None:
    sandbox.ns["df"] = pd.DataFrame({"a": range(100)})
    sandbox.tamper = lambda run, bundles: _flip_payload_byte(bundles) if run == 1 else bundles
    with pytest.raises(TransferError, match="sha256 does not match"):
        asyncio.run(pull(sandbox.run_code, "df", chunk_bytes=256, compress=False))
    assert STORE_NAME not in sandbox.ns  # a discard run followed the failure


def test_mutated_compressed_chunk_is_refused(sandbox: InProcessSandbox) -> None:
    sandbox.ns["df"] = pd.DataFrame({"a": range(1000)})
    sandbox.tamper = lambda run, bundles: _flip_payload_byte(bundles)
    with pytest.raises(TransferError, match=r"corrupt|announced size|sha256 does not match"):
        asyncio.run(pull(sandbox.run_code, "df", chunk_bytes=1024))


def test_compressed_chunk_that_expands_past_its_size_is_refused() -> None:
    bomb = base64.b64encode(zlib.compress(b"\0" * 10_000_000)).decode()
    with pytest.raises(CodecError, match="does not have the announced size"):
        unpack_chunk(bomb, "zlib", 1000)
    with pytest.raises(CodecError, match="not accepted"):
        unpack_chunk(bomb, "pickle", 1000)


def test_compressible_chunks_travel_compressed(sandbox: InProcessSandbox) -> None:
    plan = plan_push("zeros", np.zeros(100_000), chunk_bytes=64 * 1024)
    codes = list(plan.codes())
    overhead = len(remote.library_source()) + 1000
    assert sum(len(code) - overhead for code in codes) < plan.size / 10
    for step, code in enumerate(codes):
        plan.check(step, sandbox.run(code))
    np.testing.assert_array_equal(sandbox.ns["zeros"], np.zeros(100_000))


def _rewrite(**changes: Any) -> Any:
    def tamper(run: int, bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for marker in markers(bundles):
            marker.update(changes)
        return bundles

    return tamper


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "pickle"}, "format 'pickle', which is refused"),
        ({"size": 10**12}, "931.3 GiB encoded, over the limit of 200.0 MiB"),
        ({"total_chunks": 7}, "inconsistent number of chunks"),
        ({"sha256": "not-a-digest"}, "no valid sha256"),
        ({"chunk": 3}, "expected chunk 0"),
        ({"data": "@@not base64@@"}, "not valid base64"),
        ({"transfer_id": "someone-else"}, "gave no answer"),
        ({"version": 99}, "protocol version 99"),
        ({"status": "error", "error": "nope"}, "the sandbox refused: nope"),
    ],
)
def test_inconsistent_pull_answers_are_refused(
    sandbox: InProcessSandbox, changes: dict[str, Any], message: str
) -> None:
    sandbox.ns["v"] = [1, 2, 3]
    sandbox.tamper = _rewrite(**changes)
    with pytest.raises(TransferError, match=re.escape(message)):
        asyncio.run(pull(sandbox.run_code, "v"))


def test_a_later_chunk_that_disagrees_with_the_first_is_refused(
    sandbox: InProcessSandbox,
) -> None:
    sandbox.ns["v"] = list(range(100))
    sandbox.tamper = lambda run, bundles: _rewrite(kind="ndarray")(run, bundles) if run else bundles
    with pytest.raises(TransferError, match="disagrees with the first on kind"):
        asyncio.run(pull(sandbox.run_code, "v", chunk_bytes=64))


def test_marker_sent_as_json_text_is_accepted(sandbox: InProcessSandbox) -> None:
    import json

    sandbox.ns["v"] = {"a": 1}

    def as_text(run: int, bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{MIME_TYPE: json.dumps(b[MIME_TYPE])} for b in bundles]

    sandbox.tamper = as_text
    assert asyncio.run(pull(sandbox.run_code, "v")) == {"a": 1}


def test_push_ack_for_a_different_payload_is_refused(sandbox: InProcessSandbox) -> None:
    sandbox.tamper = _rewrite(sha256="0" * 64)
    with pytest.raises(TransferError, match="confirmed a different payload"):
        asyncio.run(push(sandbox.run_code, "x", [1, 2]))


def test_push_chunk_lost_in_the_sandbox_is_detected(sandbox: InProcessSandbox) -> None:
    plan = plan_push("x", list(range(50)), chunk_bytes=32)
    sandbox.run(plan.code(0))
    sandbox.ns.pop(STORE_NAME)  # e.g. the kernel restarted between runs
    bundles = sandbox.run(plan.code(1))
    with pytest.raises(TransferError, match="out of order"):
        plan.check(1, bundles)


def test_unrelated_outputs_next_to_the_marker_are_ignored(sandbox: InProcessSandbox) -> None:
    sandbox.ns["v"] = [1]

    def add_noise(run: int, bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
        noise = [{"text/plain": "hello"}, {MIME_TYPE: "not json"}, {MIME_TYPE: [1, 2]}]
        return noise + bundles

    sandbox.tamper = add_noise
    assert asyncio.run(pull(sandbox.run_code, "v")) == [1]


def test_package_works_without_numpy_pandas_or_pyarrow() -> None:
    script = """
import sys
for name in ("numpy", "pandas", "pyarrow"):
    sys.modules[name] = None
import sandbox_magic.transfer as t
assert t.local_formats() == ("json",), t.local_formats()
encoded = t.encode_value({"a": [1, 2.5]})
assert t.decode_value(encoded.format, encoded.kind, encoded.data) == {"a": [1, 2.5]}
try:
    t.decode_value("npy", "ndarray", b"\\x93NUMPY")
except t.TransferError as exc:
    assert "numpy is not installed" in str(exc), exc
else:
    raise AssertionError("decoded npy without numpy")
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "ok", done.stderr
