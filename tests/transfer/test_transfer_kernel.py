"""Push and pull against a real Jupyter kernel playing the sandbox."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from sandbox_magic.client import RemoteExecutionError
from sandbox_magic.transfer import TransferError, probe, pull, push

if TYPE_CHECKING:
    from tests.transfer.conftest import KernelSandbox

pytestmark = pytest.mark.slow


def sample_frame(rows: int = 500) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "n": np.arange(rows),
            "s": [f"row {i}" if i % 7 else None for i in range(rows)],
            "when": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
            "c": pd.Categorical(rng.choice(["a", "b", "c"], size=rows)),
            "f": np.where(np.arange(rows) % 5 == 0, np.nan, 1.0),
        }
    )


def test_dataframe_push_check_remotely_and_pull_back(kernel: KernelSandbox) -> None:
    frame = sample_frame()
    receipt = asyncio.run(push(kernel.run_code, "df", frame))
    assert receipt.format == "arrow"
    assert receipt.shape == (500, 6)
    assert kernel.eval("list(df.shape)") == [500, 6]
    assert kernel.eval("str(df['c'].dtype)") == "category"
    kernel.execute("df['y'] = df['x'] * 2")
    back = asyncio.run(pull(kernel.run_code, "df"))
    expected = frame.assign(y=frame["x"] * 2)
    pd.testing.assert_frame_equal(back, expected)  # type: ignore[arg-type]


def test_series_round_trip(kernel: KernelSandbox) -> None:
    series = pd.Series([1.5, None, 3.0], name="price", index=["a", "b", "c"])
    asyncio.run(push(kernel.run_code, "s", series))
    assert kernel.eval("s.name") == "price"
    pd.testing.assert_series_equal(asyncio.run(pull(kernel.run_code, "s")), series)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        np.linspace(0, 1, 7, dtype=np.float32),
        np.array(["2024-01-01T00:00"], dtype="datetime64[m]"),
        np.array([True, False, True]),
    ],
    ids=lambda a: str(a.dtype),
)
def test_numpy_round_trip(kernel: KernelSandbox, array: np.ndarray) -> None:  # type: ignore[type-arg]
    asyncio.run(push(kernel.run_code, "arr", array))
    assert kernel.eval("[str(arr.dtype), list(arr.shape)]") == [
        str(array.dtype),
        list(array.shape),
    ]
    back = asyncio.run(pull(kernel.run_code, "arr"))
    assert isinstance(back, np.ndarray)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_json_round_trip(kernel: KernelSandbox) -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "ünïcode"}, "big": 2**80}
    asyncio.run(push(kernel.run_code, "cfg", value))
    assert kernel.eval("cfg['b']['c']") == "ünïcode"
    assert asyncio.run(pull(kernel.run_code, "cfg")) == value


def test_chunked_transfer_in_many_runs(kernel: KernelSandbox) -> None:
    frame = sample_frame(2000)
    before = kernel.runs
    receipt = asyncio.run(push(kernel.run_code, "big", frame, chunk_bytes=16 * 1024))
    assert receipt.chunks > 5
    assert kernel.runs - before == receipt.chunks + 1  # one probe run
    before = kernel.runs
    back = asyncio.run(pull(kernel.run_code, "big", chunk_bytes=16 * 1024))
    assert kernel.runs - before == receipt.chunks
    pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]
    assert kernel.eval("'__sandbox_magic_transfers__' in globals()") is False


def test_transfer_code_is_scrubbed_from_the_kernel_history(kernel: KernelSandbox) -> None:
    asyncio.run(push(kernel.run_code, "blob", "z" * 100_000, chunk_bytes=30_000))
    assert kernel.eval("max(len(cell) for cell in In)") < 1000
    assert kernel.eval("len(_i) + len(_ii) + len(_iii)") < 1000


def test_unsupported_remote_value_is_named(kernel: KernelSandbox) -> None:
    kernel.execute("import threading\nlock = threading.Lock()")
    with pytest.raises(TransferError, match=r"lock is a _thread\.lock"):
        asyncio.run(pull(kernel.run_code, "lock"))
    kernel.execute("objs = __import__('numpy').array([{}, 1], dtype=object)")
    with pytest.raises(TransferError, match="object arrays would need pickle"):
        asyncio.run(pull(kernel.run_code, "objs"))


def test_pull_limit_is_enforced_in_the_sandbox(kernel: KernelSandbox) -> None:
    kernel.execute("import numpy\nhuge = numpy.zeros(1_000_000)")
    with pytest.raises(TransferError, match=r"7\.6 MiB .* over the limit of 1\.0 MiB"):
        asyncio.run(pull(kernel.run_code, "huge", max_bytes=1024 * 1024))


def test_sandbox_without_pyarrow_falls_back_both_ways(fresh_kernel: KernelSandbox) -> None:
    fresh_kernel.execute("import sys\nsys.modules['pyarrow'] = None")
    caps = asyncio.run(probe(fresh_kernel.run_code))
    assert caps.pyarrow is None
    assert "arrow" not in caps.formats
    assert caps.pandas is not None
    frame = sample_frame(300)
    receipt = asyncio.run(push(fresh_kernel.run_code, "df", frame, chunk_bytes=8192))
    assert receipt.format == "pandas-npy"
    assert fresh_kernel.eval("list(df.shape)") == [300, 6]
    assembler_formats = []

    async def spy(code: str) -> list[dict[str, object]]:
        bundles = await fresh_kernel.run_code(code)
        for bundle in bundles:
            marker = bundle.get("application/vnd.sandbox-magic.transfer+json")
            if isinstance(marker, dict):
                assembler_formats.append(marker.get("format"))
        return bundles

    back = asyncio.run(pull(spy, "df", chunk_bytes=8192))
    assert set(assembler_formats) == {"pandas-npy"}
    pd.testing.assert_frame_equal(back, frame)  # type: ignore[arg-type]


def test_notebook_without_pyarrow_asks_for_the_fallback(
    kernel: KernelSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    kernel.execute("import pandas\nplain = pandas.DataFrame({'a': [1, 2], 'b': ['x', 'y']})")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    back = asyncio.run(pull(kernel.run_code, "plain"))
    pd.testing.assert_frame_equal(back, pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}))  # type: ignore[arg-type]


def test_user_cells_keep_their_tracebacks_and_snippets_do_not_pile_up(
    kernel: KernelSandbox,
) -> None:
    kernel.execute("def explode():\n    raise ValueError('boom from user code')")
    for _ in range(3):
        asyncio.run(push(kernel.run_code, "blob", "q" * 50_000, chunk_bytes=20_000))
    with pytest.raises(RemoteExecutionError) as info:
        kernel.execute("explode()")
    plain = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(info.value.traceback))
    assert "raise ValueError('boom from user code')" in plain
    cached = kernel.eval(
        "sum(1 for e in __import__('linecache').cache.values() "
        "if e[2] and e[2][0].startswith('def __sandbox_magic_transfer__'))"
    )
    assert cached <= 1
