"""Fixtures of the classroom tests: the shared real server, its admin, and students.

Students are keys made over ``POST /v1/keys`` on the session's ``live_server`` (its
token is the admin key); names are unique per test, so tests never share a student.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

TERMINAL = {"succeeded", "failed", "cancelled"}


def wait_until(check: Callable[[], Any], *, timeout: float = 30.0, what: str = "it") -> Any:
    """Poll ``check`` until it returns something truthy (or fail at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class Student:
    """A client holding one student's key, with shortcuts for the routes."""

    def __init__(self, url: str, name: str, key: str, key_id: str) -> None:
        self.name = name
        self.key_id = key_id
        self.key = key
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0
        )

    def sandbox(self) -> str:
        response = self.http.post("/v1/sandboxes", json={})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def context(self, sandbox_id: str) -> str:
        response = self.http.post(f"/v1/sandboxes/{sandbox_id}/code/contexts", json={})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    def submit(self, sandbox_id: str, context_id: str, code: str, **body: Any) -> dict[str, Any]:
        response = self.http.post(
            f"/v1/sandboxes/{sandbox_id}/code/runs",
            json={"code": code, "context_id": context_id, **body},
        )
        assert response.status_code == 202, response.text
        run: dict[str, Any] = response.json()
        return run

    def wait(self, sandbox_id: str, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            run = self.http.get(f"/v1/sandboxes/{sandbox_id}/code/runs/{run_id}").json()
            return run if run["status"] in TERMINAL else None

        found: dict[str, Any] = wait_until(finished, timeout=timeout, what=f"run {run_id}")
        return found

    def run(self, sandbox_id: str, context_id: str, code: str, **body: Any) -> dict[str, Any]:
        return self.wait(sandbox_id, self.submit(sandbox_id, context_id, code, **body)["id"])


@pytest.fixture
def admin(live_server: Any) -> Iterator[httpx.Client]:
    with live_server.client() as client:
        yield client


@pytest.fixture
def make_student(admin: httpx.Client, live_server: Any) -> Iterator[Callable[..., Student]]:
    """``make_student(quotas=None)``: a new key (unique name) and its client."""
    made: list[Student] = []

    def make(quotas: dict[str, int | None] | None = None, prefix: str = "student") -> Student:
        name = f"{prefix}-{secrets.token_hex(3)}"
        body: dict[str, Any] = {"name": name}
        if quotas is not None:
            body["quotas"] = quotas
        response = admin.post("/v1/keys", json=body)
        assert response.status_code == 201, response.text
        answer = response.json()
        student = Student(live_server.url, name, answer["key"], answer["id"])
        made.append(student)
        return student

    yield make
    names = {student.name for student in made}
    for sandbox in admin.get("/v1/sandboxes").json():
        if sandbox["owner"] in names:
            admin.delete(f"/v1/sandboxes/{sandbox['id']}")
    for student in made:
        student.http.close()
        admin.delete(f"/v1/keys/{student.key_id}")


@pytest.fixture(scope="session", name="wait_until")
def wait_until_fixture() -> Callable[..., Any]:
    return wait_until
