"""On a server without async runs, the magic asks for a run once per server, then streams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty

from sandbox_magic.client._client import AsyncSandboxClient
from tests.conftest import LiveServer, start_server


@pytest.fixture(scope="module")
def no_async_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(
        tmp_path_factory.mktemp("stream-only"), None, "--api", "machines", "--disable-async-runs"
    )
    yield server
    server.stop()


def test_the_choice_to_stream_is_remembered_per_server(
    ip: InteractiveShell,
    no_async_runs: LiveServer,
    live_server: LiveServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    original = AsyncSandboxClient.create_run

    async def counting(self: AsyncSandboxClient, *args: Any, **kwargs: Any) -> Any:
        asked.append(self.base_url)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(AsyncSandboxClient, "create_run", counting)
    ip.run_line_magic("load_ext", "sandbox_magic")
    magics = ip._sandbox_magics  # type: ignore[attr-defined]
    magics.api_url, magics.api_key = no_async_runs.url, no_async_runs.token
    magics.journal_path = str(tmp_path / "journal.jsonl")
    magics.keep_sandbox = False
    try:
        for n in range(3):
            assert pretty(ip.run_cell_magic("sandbox", "", f"{n} + 1")) == str(n + 1)
        assert asked == [no_async_runs.url]  # asked once; the next cells streamed at once
        # A new session on the same server (a new key here) still remembers it.
        magics.api_key = no_async_runs.token + ""
        magics.request_timeout = 31.0
        ip.run_cell_magic("sandbox", "", "1")
        assert asked == [no_async_runs.url]
        # Another server is asked on its own.
        magics.api_url, magics.api_key = live_server.url, live_server.token
        ip.run_cell_magic("sandbox", "", "1")
        assert asked == [no_async_runs.url, live_server.url]
        # Nothing streamed was journaled (it could not be attached).
        journal = Path(magics.journal_path)
        assert no_async_runs.url not in (journal.read_text() if journal.exists() else "")
    finally:
        ip.run_line_magic("unload_ext", "sandbox_magic")
