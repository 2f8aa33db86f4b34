"""Fixtures for the real-browser tests: one JupyterLab server and one Chromium per session.

Chromium is the system one (Debian's ``chromium`` package), never a Playwright
download. Without it the tests skip locally but fail under CI (``CI=true``),
since CI is expected to install it. ``SANDBOX_MAGIC_CHROMIUM`` may name another
Chromium binary.
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright

from .lab import (
    CHROMIUM_ARGS,
    SCREENSHOT_DIR,
    LabServer,
    find_chromium,
    running_in_ci,
    start_lab,
    stop_lab,
)

VIEWPORT = ViewportSize(width=1280, height=900)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # Keep each phase's report on the item so fixtures can tell a failed test apart.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        reason = (
            "system Chromium not found (install Debian's `chromium` package, "
            "or set SANDBOX_MAGIC_CHROMIUM)"
        )
        if running_in_ci():
            pytest.fail(reason + "; CI must install it", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """A JupyterLab 4 server on 127.0.0.1 with a fresh token, rooted in a temp directory."""
    root_dir = tmp_path_factory.mktemp("lab-root")
    state_dir = tmp_path_factory.mktemp("lab-state")
    server = start_lab(root_dir, state_dir)
    try:
        yield server
    finally:
        leftovers = stop_lab(server)
    assert server.process.returncode is not None, "JupyterLab did not exit"
    assert not leftovers, "processes outlived JupyterLab and were killed:\n" + "\n".join(leftovers)


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(
    browser: Browser, jupyter_lab: LabServer, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser context and page; on failure its screenshot lands in test-artifacts.

    Afterwards the notebook sessions the test opened are shut down, so kernels
    do not pile up across tests.
    """
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda error: page_errors.append(str(error)))
    try:
        yield page
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            target = SCREENSHOT_DIR / f"{request.node.name}-failure.png"
            with contextlib.suppress(Exception):
                page.screenshot(path=str(target))
            if page_errors:
                report.sections.append(("browser page errors", "\n".join(page_errors)))
        context.close()
        jupyter_lab.shutdown_sessions()
