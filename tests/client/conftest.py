"""Shared fakes for the client, poller and progress tests: a virtual clock, no real sleeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox_magic.client import AsyncSandboxClient, RetryPolicy

BASE_URL = "http://sandbox.test"
SECRET = "sk-live-TOPSECRET-0123456789"


class FakeTime:
    """A monotonic clock that only moves when code sleeps on it; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def make_client(fake_time: FakeTime) -> Callable[..., AsyncSandboxClient]:
    """Build a client over a MockTransport handler, sleeping on the fake clock."""

    def build(handler: Handler, **kwargs: Any) -> AsyncSandboxClient:
        kwargs.setdefault("retry", RetryPolicy())
        kwargs.setdefault("api_key", SECRET)
        kwargs.setdefault("api_generation", "0")  # the fakes answer 0.x paths only
        return AsyncSandboxClient(
            kwargs.pop("base_url", BASE_URL),
            transport=httpx.MockTransport(handler),
            sleep=fake_time.sleep,
            clock=fake_time.clock,
            **kwargs,
        )

    return build


def _run_json(
    run_id: str = "run_1",
    status: str = "queued",
    *,
    stdout: list[str] | None = None,
    stderr: list[str] | None = None,
    results: list[dict[str, Any]] | None = None,
    order: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A run object as the server sends it."""
    execution: dict[str, Any] = {
        "results": results or [],
        "logs": {"stdout": stdout or [], "stderr": stderr or []},
    }
    if order is not None:
        execution["output_order"] = order
    return {
        "id": run_id,
        "sandbox_id": "sb_1",
        "context_id": "ctx_1",
        "status": status,
        "timeout_secs": 60,
        "execution": execution,
        **extra,
    }


@pytest.fixture
def run_json() -> Callable[..., dict[str, Any]]:
    """Builder of run objects as the server sends them (``run_json(status=..., stdout=[...])``)."""
    return _run_json


@pytest.fixture
def secret() -> str:
    """The API key every test client uses; it must never show up anywhere."""
    return SECRET
