"""The magic on servers with and without run watching and file endpoints.

Against the live server (both on), runs are followed over watches and --push/--pull
travel as raw files; against a server started with ``--no-long-poll
--no-file-endpoints`` (what the hosted service offers), the same cells poll and move
data as code chunks. Spies count the client calls; the server is real in both cases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from sandbox_magic.client import AsyncSandboxClient


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of the client's watch and file calls (the real methods still run)."""
    counts = {"watch_run": 0, "get_run": 0, "put_file": 0, "get_file": 0}
    for name in counts:
        original = getattr(AsyncSandboxClient, name)

        def spy(
            self: Any, *args: Any, _name: str = name, _original: Any = original, **kw: Any
        ) -> Any:
            counts[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(AsyncSandboxClient, name, spy)
    return counts


@pytest.fixture
def plain_shell(
    ip: InteractiveShell, server_factory: Callable[..., Any], tmp_path: Any
) -> Iterator[InteractiveShell]:
    """The magic pointed at a server that offers only the plain contract."""
    server = server_factory(None, None, "--no-long-poll", "--no-file-endpoints")
    ip.run_line_magic("load_ext", "sandbox_magic")
    magics = ip._sandbox_magics  # type: ignore[attr-defined]
    magics.api_url, magics.api_key = server.url, server.token
    magics.journal_path = str(tmp_path / "journal.jsonl")
    magics.keep_sandbox = False
    yield ip
    ip.run_line_magic("unload_ext", "sandbox_magic")


def frame() -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(5000), "label": [f"r{i}" for i in range(5000)]})


def run_cell(shell: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, captured


def test_files_and_watches_where_the_server_offers_them(
    shell: InteractiveShell, calls: dict[str, int], live_server: Any
) -> None:
    shell.user_ns["frame"] = frame()
    result, captured = run_cell(
        shell,
        "%%sandbox --push frame --pull doubled\n"
        "print('pushed', len(frame))\ndoubled = frame.assign(x=frame.x * 2)",
    )
    assert result.success, result.error_in_exec
    assert "pushed 5000" in captured.stdout
    pd.testing.assert_frame_equal(shell.user_ns["doubled"], frame().assign(x=frame().x * 2))
    assert calls["put_file"] == 1
    assert calls["get_file"] == 1
    assert calls["watch_run"] >= 1
    assert calls["get_run"] == 0  # never polled
    # Nothing left behind, and no transfer file reported as an artifact.
    sandbox_id = shell._sandbox_magics.controller.active_session.sandbox_id  # type: ignore[attr-defined]
    workspace = live_server.state_dir / "sandboxes" / sandbox_id / "workspace"
    assert list((workspace / ".sandbox-magic-transfer").iterdir()) == []
    with live_server.client() as api:
        artifacts = api.get(f"/v1/sandboxes/{sandbox_id}/code/artifacts").json()["items"]
    assert artifacts == []


def test_pull_refusals_are_clear_and_leave_no_file(
    shell: InteractiveShell, calls: dict[str, int], live_server: Any
) -> None:
    result, _ = run_cell(shell, "%%sandbox --pull nowhere\n1")
    assert not result.success
    assert "'nowhere' is not defined in the sandbox" in str(result.error_in_exec)
    shell._sandbox_magics.max_transfer_bytes = 1000  # type: ignore[attr-defined]
    result, _ = run_cell(shell, "%%sandbox --pull big\nbig = list(range(10_000))")
    assert not result.success
    assert "over the limit" in str(result.error_in_exec)
    assert calls["get_file"] == 0  # refused before a byte was fetched
    sandbox_id = shell._sandbox_magics.controller.active_session.sandbox_id  # type: ignore[attr-defined]
    transfers = live_server.state_dir / "sandboxes" / sandbox_id / "workspace"
    assert not any((transfers / ".sandbox-magic-transfer").glob("*"))


def test_a_pushed_file_altered_on_the_way_is_refused(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = AsyncSandboxClient.put_file

    async def tampering(self: Any, sandbox_id: str, path: str, data: bytes) -> None:
        await original(self, sandbox_id, path, data[:-1] + bytes([data[-1] ^ 1]))

    monkeypatch.setattr(AsyncSandboxClient, "put_file", tampering)
    shell.user_ns["values"] = [1, 2, 3]
    result, _ = run_cell(shell, "%%sandbox --push values\n1")
    assert not result.success
    assert "damaged" in str(result.error_in_exec)
    check, captured = run_cell(shell, "%%sandbox\nprint('values' in globals())")
    assert check.success
    assert captured.stdout.strip() == "False"


def test_plain_servers_get_polls_and_code_chunks(
    plain_shell: InteractiveShell, calls: dict[str, int]
) -> None:
    plain_shell.user_ns["frame"] = frame()
    result, captured = run_cell(
        plain_shell,
        "%%sandbox --push frame --pull doubled\n"
        "print('pushed', len(frame))\ndoubled = frame.assign(x=frame.x * 2)",
    )
    assert result.success, result.error_in_exec
    assert "pushed 5000" in captured.stdout
    pd.testing.assert_frame_equal(plain_shell.user_ns["doubled"], frame().assign(x=frame().x * 2))
    assert calls["put_file"] == calls["get_file"] == 0
    assert calls["get_run"] > 0
    # watch_run is never even tried: the server advertised nothing.
    assert calls["watch_run"] == 0
