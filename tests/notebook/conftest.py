"""Fixtures for driving the magics through a real IPython shell against the real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from testkit import magics_of


@pytest.fixture
def shell(ip: InteractiveShell, live_server: Any, tmp_path: Any) -> Iterator[InteractiveShell]:
    """A shell with the extension loaded and pointed at the live local server."""
    ip.run_line_magic("load_ext", "sandbox_magic")
    magics = magics_of(ip)
    magics.api_url = live_server.url
    magics.api_key = live_server.token
    magics.journal_path = str(tmp_path / "journal.jsonl")
    magics.status_delay = 0.2
    magics.keep_sandbox = False  # unloading deletes the sandbox and its kernels
    yield ip
    ip.run_line_magic("unload_ext", "sandbox_magic")
    for name in ("r", "run", "_"):
        ip.user_ns.pop(name, None)
