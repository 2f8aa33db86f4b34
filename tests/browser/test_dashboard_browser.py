"""The teacher's dashboard in real Chromium, with three students doing real work.

A fresh server; three keys; student one runs a CPU loop, student two a cell that
fails and then a long sleep, student three a run queued behind a sleeping one. The
page signs in with the admin key (never in a URL), shows each of them, updates
without a reload, and its buttons cancel, restart, delete and revoke. Every request
the page makes goes to the server itself (no external assets).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from .lab import REPO_ROOT, SCREENSHOT_DIR

pytestmark = pytest.mark.browser

TERMINAL = {"succeeded", "failed", "cancelled"}


class Student:
    def __init__(self, url: str, admin: httpx.Client, name: str) -> None:
        made = admin.post("/v1/keys", json={"name": name})
        assert made.status_code == 201, made.text
        self.name = name
        self.key = made.json()["key"]
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {self.key}"}, timeout=30
        )
        self.sandbox = self.http.post("/v1/sandboxes", json={}).json()["id"]
        self.base = f"/v1/sandboxes/{self.sandbox}"
        self.context = self.http.post(f"{self.base}/code/contexts", json={}).json()["id"]

    def submit(self, code: str) -> str:
        response = self.http.post(
            f"{self.base}/code/runs", json={"code": code, "context_id": self.context}
        )
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def status(self, run_id: str) -> str:
        return str(self.http.get(f"{self.base}/code/runs/{run_id}").json()["status"])


def _wait(check: Any, timeout: float = 30.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


@pytest.fixture
def classroom(server_factory: Any) -> Iterator[tuple[Any, list[Student]]]:
    server = server_factory()
    with server.client() as admin:
        students = [Student(server.url, admin, name) for name in ("ada", "bo", "cy")]
        yield server, students
        for student in students:
            student.http.close()


@pytest.fixture
def dashboard_page(browser: Browser, classroom: Any) -> Iterator[tuple[Page, list[str]]]:
    server, _ = classroom
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    elsewhere: list[str] = []

    def only_the_server(route: Any) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_server)
    page = context.new_page()
    try:
        yield page, elsewhere
    finally:
        context.close()


def test_dashboard_shows_the_class_and_acts(classroom, dashboard_page) -> None:
    server, (ada, bo, cy) = classroom
    page, elsewhere = dashboard_page
    loop = ada.submit("while True:\n    pass")
    failing = bo.submit("1 / 0")
    _wait(lambda: bo.status(failing) in TERMINAL, what="the failing run")
    sleeper = cy.submit("import time; time.sleep(60)")
    queued = cy.submit("print('after the sleep')")
    _wait(lambda: ada.status(loop) == "running", what="the loop to start")

    page.goto(f"{server.url}/dashboard")
    expect(page.locator("form#login")).to_be_visible()
    page.fill("#key", "smk_000000000000_not-a-real-key-at-all")
    page.click("form#login button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not an admin")
    page.fill("#key", server.token)
    page.click("form#login button[type=submit]")
    expect(page.locator("main#class")).to_be_visible()
    assert server.token not in page.url
    cookie = next(c for c in page.context.cookies() if c["name"] == "sandbox_magic_dashboard")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert server.token not in cookie["value"]

    ada_card = page.locator('section[data-student="ada"]')
    bo_card = page.locator('section[data-student="bo"]')
    cy_card = page.locator('section[data-student="cy"]')
    expect(ada_card.locator(f'tr[data-run="{loop}"]')).to_contain_text("while True:")
    expect(ada_card.locator(f'tr[data-run="{loop}"]')).to_contain_text("running")
    # the loop is demoted after a quarter second of CPU: its kernel runs at a lower priority
    expect(ada_card.locator(f'tr[data-run="{loop}"]')).to_contain_text("nice 16", timeout=10_000)
    expect(ada_card.locator(".facts")).to_contain_text("CPU")
    expect(ada_card.locator(f'tr[data-context="{ada.context}"]')).to_contain_text("MB")
    expect(bo_card.locator(f'tr[data-failure="{failing}"]')).to_contain_text("1 / 0")
    expect(bo_card.locator(f'tr[data-failure="{failing}"]')).to_contain_text("ZeroDivisionError")
    expect(cy_card.locator(f'tr[data-run="{sleeper}"]')).to_contain_text("running")
    expect(cy_card.locator(f'tr[data-run="{queued}"]')).to_contain_text("queued")
    expect(cy_card.locator(f'tr[data-run="{queued}"]')).to_contain_text("print('after the sleep')")
    expect(ada_card.locator(".facts")).to_contain_text("last activity")

    # it updates without a reload
    later = bo.submit("import time; time.sleep(60)  # bo's second cell")
    expect(bo_card.locator(f'tr[data-run="{later}"]')).to_contain_text("bo's second cell")

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / "dashboard.png"))
    if os.environ.get("SANDBOX_MAGIC_UPDATE_SCREENSHOT") == "1":  # refresh the README's image
        page.screenshot(path=str(REPO_ROOT / "docs" / "images" / "dashboard.png"))

    # cancel ada's loop
    ada_card.locator(f'button[data-action="cancel:{loop}"]').click()
    _wait(lambda: ada.status(loop) == "cancelled", what="the loop to be cancelled")
    expect(ada_card.locator(f'tr[data-run="{loop}"]')).to_have_count(0)

    # restart cy's context (two clicks: the first one arms the button)
    restart = cy_card.locator(f'button[data-action="restart:{cy.context}"]')
    restart.click()
    expect(restart).to_contain_text("Confirm")
    restart.click()
    _wait(lambda: cy.status(sleeper) == "cancelled", what="the restart to end the sleep")
    assert "restarted" in cy.http.get(f"{cy.base}/code/runs/{sleeper}").json()["failure_reason"]

    # delete bo's sandbox, then revoke bo's key
    delete = bo_card.locator(f'button[data-action="delete:{bo.sandbox}"]')
    delete.click()
    delete.click()
    _wait(lambda: bo.http.get(bo.base).status_code == 404, what="the sandbox to go")
    revoke = bo_card.locator('button[data-action="revoke:bo"]')
    revoke.click()
    revoke.click()
    _wait(lambda: bo.http.get("/v1/sandboxes").status_code == 401, what="the key to stop working")
    expect(page.locator("#notice")).to_contain_text("revoked the key of bo")

    assert elsewhere == []
    logs = "".join(server.output)
    for key in (server.token, ada.key, bo.key, cy.key):
        assert key not in logs
        assert key not in page.content()


def test_dashboard_api_needs_a_session(classroom) -> None:
    server, (ada, _, _) = classroom
    assert httpx.get(f"{server.url}/dashboard/api/state").status_code == 401
    # a student's key cannot sign in
    refused = httpx.post(f"{server.url}/dashboard/login", json={"key": ada.key})
    assert refused.status_code == 401
    with httpx.Client(base_url=server.url) as browser_like:
        signed = browser_like.post("/dashboard/login", json={"key": server.token})
        assert signed.status_code == 200
        assert browser_like.get("/dashboard/api/state").status_code == 200
        # an action without the dashboard's header (a cross-site form) is refused
        forged = browser_like.post("/dashboard/api/action", json={"action": "revoke_key"})
        assert forged.status_code == 403
        assert ada.http.get("/v1/sandboxes").status_code == 200
