"""Fixtures for the reliability tests: an in-process IPython shell aimed at any server.

``point_shell(url, token)`` loads the extension into the process-wide test shell and
aims it at a server (the shared ``live_server``, a fault proxy in front of it, or a
server of the test's own); the extension is unloaded after the test.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from testkit import magics_of

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "reliability"


@pytest.fixture
def point_shell(ip: InteractiveShell, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``point_shell(url, token, **traits)`` -> the loaded `SandboxMagics`."""
    loaded = False

    def point(url: str, token: str | None, **traits: Any) -> Any:
        nonlocal loaded
        if not loaded:
            ip.run_line_magic("load_ext", "sandbox_magic")
            loaded = True
        magics = magics_of(ip)
        magics.api_url = url
        magics.api_key = token
        magics.journal_path = str(tmp_path / "journal.jsonl")
        magics.status_delay = 0.2
        magics.keep_sandbox = False  # tests clean up the sandboxes (and kernels) they make
        for name, value in traits.items():
            setattr(magics, name, value)
        return magics

    yield point
    if loaded:
        ip.run_line_magic("unload_ext", "sandbox_magic")
    for name in ("r", "_", "counter"):
        ip.user_ns.pop(name, None)


@pytest.fixture
def shell(
    ip: InteractiveShell, point_shell: Callable[..., Any], live_server: Any
) -> InteractiveShell:
    """The shell aimed at the shared live server."""
    point_shell(live_server.url, live_server.token)
    return ip


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Print figures (seen with ``-s``) and keep them under test-artifacts/reliability."""
    text = json.dumps(figures, indent=2, sort_keys=True)
    print(f"\n[{name}] {text}")
    try:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / f"{name}.json").write_text(text + "\n")
    except OSError:
        pass


@pytest.fixture(name="record_figures")
def record_figures_fixture() -> Callable[[str, dict[str, Any]], None]:
    return record_figures
