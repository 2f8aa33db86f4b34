"""Fixtures for the notebook tests: kernels driven by jupyter_client, the showcase notebook."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from nbkit import SHOWCASE, KernelSession, Showcase, remote_env, run_notebook


@pytest.fixture
def kernel_factory(tmp_path: Path) -> Iterator[Callable[[Mapping[str, str]], KernelSession]]:
    """Start notebook kernels; each one is shut down after the test."""
    started: list[KernelSession] = []

    def start(env: Mapping[str, str]) -> KernelSession:
        session = KernelSession(env, tmp_path)
        started.append(session)
        return session

    yield start
    for session in started:
        session.shutdown()


@pytest.fixture(scope="session")
def showcase(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Showcase:
    """The showcase notebook executed once against the live server, saved and re-read."""
    home = tmp_path_factory.mktemp("showcase")
    executed = run_notebook(home, list(SHOWCASE.values()), remote_env(home, live_server))
    return Showcase(executed=executed, token=live_server.token)
