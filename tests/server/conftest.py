"""Helpers for the server tests: a client of the shared server and a fresh sandbox."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from testkit import wait_until as shared_wait_until

TERMINAL = {"succeeded", "failed", "cancelled"}


#: The shared helper, polling tightly: the server answers in milliseconds.
wait_until = functools.partial(shared_wait_until, interval=0.005)


@dataclass
class SandboxHelper:
    """One fresh sandbox on a server, with shortcuts for its routes."""

    api: httpx.Client
    id: str

    @property
    def base(self) -> str:
        return f"/v1/sandboxes/{self.id}"

    def context(self, **body: Any) -> str:
        response = self.api.post(f"{self.base}/code/contexts", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def submit(self, code: str, context_id: str, **body: Any) -> dict[str, Any]:
        response = self.api.post(
            f"{self.base}/code/runs", json={"code": code, "context_id": context_id, **body}
        )
        assert response.status_code == 202, response.text
        run: dict[str, Any] = response.json()
        return run

    def get(self, run_id: str) -> dict[str, Any]:
        response = self.api.get(f"{self.base}/code/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        return run

    def wait(self, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.get(run_id)
            return run if run["status"] in TERMINAL else None

        result: dict[str, Any] = wait_until(finished, timeout=timeout, what=f"run {run_id}")
        return result

    def run(self, code: str, context_id: str, **body: Any) -> dict[str, Any]:
        return self.wait(self.submit(code, context_id, **body)["id"])


@pytest.fixture(scope="session", name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    """`wait_until` as a fixture (test modules here are not importable)."""
    return wait_until


@pytest.fixture(scope="session")
def api(live_server: Any) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


@pytest.fixture
def sbx(api: httpx.Client) -> Iterator[SandboxHelper]:
    response = api.post("/v1/sandboxes", json={})
    assert response.status_code == 201, response.text
    helper = SandboxHelper(api, response.json()["id"])
    yield helper
    api.delete(helper.base)
