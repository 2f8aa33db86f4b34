"""The magic asks a confined server for internet access only when told to."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from testkit import magics_of, session_of

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("slirp4netns") is None,
    reason="needs bubblewrap and slirp4netns (scripts/test.sh installs them)",
)

INTERFACES = "%%sandbox\nopen('/proc/net/dev').read().count(':')"


@pytest.fixture
def confined_shell(
    ip: InteractiveShell, confined_server: Any, tmp_path: Path
) -> Iterator[InteractiveShell]:
    ip.run_line_magic("load_ext", "sandbox_magic")
    magics = magics_of(ip)
    magics.api_url = confined_server.url
    magics.api_key = confined_server.token
    magics.journal_path = str(tmp_path / "journal.jsonl")
    magics.keep_sandbox = False
    yield ip
    ip.run_line_magic("unload_ext", "sandbox_magic")
    magics.internet_access = None


def _interfaces(shell: InteractiveShell) -> int:
    with capture_output():
        result = shell.run_cell(INTERFACES)
    assert result.success, result.error_in_exec
    return int(result.result)


def test_internet_access_is_asked_for_only_when_configured(
    confined_shell: InteractiveShell, confined_server: Any
) -> None:
    assert _interfaces(confined_shell) == 1  # lo only: the server's default
    first = session_of(confined_shell).sandbox_id
    confined_shell.run_line_magic("config", "SandboxMagics.internet_access = True")
    assert _interfaces(confined_shell) == 2  # lo and tap0, in a new sandbox
    second = session_of(confined_shell).sandbox_id
    assert second != first
    with confined_server.client() as api:
        config = api.get(f"/v1/sandboxes/{second}").json()["config"]
    assert config["internet_access"] is True
