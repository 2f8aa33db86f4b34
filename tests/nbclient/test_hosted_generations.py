"""Notebooks (nbclient, real kernels) against servers of each hosted API shape.

- a server that speaks only ``/v1/machines`` (1.x);
- a server that speaks only ``/v1/sandboxes`` (0.x);
- a 1.x server without async runs (``--disable-async-runs``): cells fall back to
  streaming through ``/code/execute``, and still time out, stop and fail properly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from nbkit import RAISES, Cell, KernelSession, remote_env, run_notebook

from tests.conftest import LiveServer, start_server

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _server(tmp_path_factory: pytest.TempPathFactory, name: str, *args: str) -> LiveServer:
    return start_server(tmp_path_factory.mktemp(name), None, *args)


@pytest.fixture(scope="module")
def machines_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = _server(tmp_path_factory, "nb-1x", "--api", "machines")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sandboxes_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = _server(tmp_path_factory, "nb-0x", "--api", "sandboxes")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def no_async_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = _server(tmp_path_factory, "nb-stream", "--api", "machines", "--disable-async-runs")
    yield server
    server.stop()


def _text(outputs: list[Any]) -> str:
    parts: list[str] = []
    for output in outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(ANSI.sub("", "\n".join(output.traceback)))
        elif "data" in output:
            parts.append(str(output.data.get("text/plain", "")))
    return "\n".join(parts)


EVERYTHING = [
    "%load_ext sandbox_magic",
    "%%sandbox --out first\nx = 20\nprint('hello', flush=True)\nx * 2",
    "values = [1, 2, 3]",
    "%%sandbox --push values --pull total\ntotal = sum(values) + x",
    "print('pulled', total)",
    "%%sandbox --save-artifacts saved\nopen('made.txt', 'w').write('made remotely')",
    "print(open('saved/made.txt').read())",
    "%%sandbox --background\nimport time\ntime.sleep(0.5)\nprint('background done')",
    "%sandbox wait",
    "%sandbox attach {first.id}",
    "%sandbox runs",
    "%sandbox artifacts",
    "%sandbox preview made.txt",
    "%sandbox contexts",
    "%sandbox interrupt",
    "%sandbox restart",
    "%%sandbox\nprint('x' in globals())",
    "%sandbox status",
    "%sandbox stop",
]


@pytest.mark.parametrize(
    ("server_name", "api"),
    [("machines_only", "1.x (/v1/machines)"), ("sandboxes_only", "0.x (/v1/sandboxes)")],
)
def test_every_magic_works_on_a_server_of_either_generation(
    request: pytest.FixtureRequest, tmp_path: Path, server_name: str, api: str
) -> None:
    server: LiveServer = request.getfixturevalue(server_name)
    cells = list(EVERYTHING)
    nb = run_notebook(tmp_path, list(cells), remote_env(tmp_path, server), timeout=180)
    index = {source: i for i, source in enumerate(cells)}

    def out(source: str) -> str:
        return _text(nb.outputs(index[source]))

    assert "hello" in out(EVERYTHING[1])
    assert "40" in out(EVERYTHING[1])
    assert "pulled 26" in out("print('pulled', total)")
    assert "made remotely" in out("print(open('saved/made.txt').read())")
    assert "background done" in out("%sandbox wait") + out(EVERYTHING[7])
    assert "40" in out("%sandbox attach {first.id}")
    assert "succeeded" in out("%sandbox runs")
    assert "made.txt" in out("%sandbox artifacts")
    assert "made remotely" in out("%sandbox preview made.txt")
    assert "default" in out("%sandbox contexts")
    assert "False" in out("%%sandbox\nprint('x' in globals())")  # the restart cleared x
    status = out("%sandbox status")
    assert api in status
    assert server.token not in nb.text


def test_without_async_runs_cells_stream_with_the_same_experience(
    no_async_runs: LiveServer, tmp_path: Path
) -> None:
    cells: list[Cell | str] = [
        "%load_ext sandbox_magic",
        "%%sandbox\nimport sys\nkept = 41\nprint('out line', flush=True)\n"
        "print('err line', file=sys.stderr, flush=True)\n6 * 7",
        "%%sandbox\nkept + 1",
        "%%sandbox --background\nprint('ran anyway')",
        Cell("%%sandbox --timeout 1\nimport time\ntime.sleep(30)", (RAISES,)),
        Cell("%%sandbox\n1 / 0", (RAISES,)),
        "values = [4, 5]",
        "%%sandbox --push values --pull doubled\ndoubled = [2 * v for v in values]",
        "print(doubled)",
        "%sandbox status",
    ]
    nb = run_notebook(tmp_path, cells, remote_env(tmp_path, no_async_runs), timeout=180)
    first = nb.outputs(1)
    assert nb.stdout(1) == "out line\n"
    assert nb.stderr(1) == "err line\n"
    [result] = [o for o in first if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "42"
    assert "streamed" in _text(first)
    assert "cannot be re-attached" in _text(first)
    assert "42" in _text(nb.outputs(2))  # same context: variables persist
    background = _text(nb.outputs(3))
    assert "cannot run in the background here" in background
    assert "ran anyway" in background
    [timeout] = [o for o in nb.outputs(4) if o.output_type == "error"]
    assert "timed out after 1 s" in ANSI.sub("", "\n".join(timeout.traceback))
    [error] = [o for o in nb.outputs(5) if o.output_type == "error"]
    assert error.ename == "ZeroDivisionError"
    assert "[8, 10]" in nb.stdout(8)
    assert "async runs unavailable: cells are streamed" in _text(nb.outputs(9))
    assert no_async_runs.token not in nb.text


LONG_LOOP = (
    "%%sandbox\nimport time\nfor i in range(600):\n    print('progress', i, flush=True)\n"
    "    time.sleep(0.1)\n"
)


def test_stop_button_interrupts_a_streamed_cell_and_the_context_stays_usable(
    no_async_runs: LiveServer, tmp_path: Path, kernel_factory: Callable[..., KernelSession]
) -> None:
    kernel = kernel_factory(remote_env(tmp_path, no_async_runs))
    assert kernel.execute("%load_ext sandbox_magic").status == "ok"
    assert kernel.execute("%%sandbox\nkept = 41").status == "ok"
    msg_id = kernel.send(LONG_LOOP)
    messages: list[dict[str, Any]] = []

    def progress(message: dict[str, Any]) -> bool:
        return message["msg_type"] == "stream" and "progress" in message["content"]["text"]

    assert kernel.collect(msg_id, timeout=60, until=progress, into=messages) is None
    kernel.manager.interrupt_kernel()
    reply = kernel.collect(msg_id, timeout=60, into=messages)
    assert reply is not None
    assert reply.status == "error"
    assert "cancelled" in reply.error
    assert "interrupted" in reply.error
    after = kernel.execute("%%sandbox\nkept + 1")
    assert after.status == "ok", after.text()
    assert after.result == "42"
