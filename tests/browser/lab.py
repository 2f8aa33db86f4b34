"""Helpers for the real-browser tests: a throwaway JupyterLab server and a notebook driver.

The server runs on loopback with a random token and private Jupyter/IPython
directories, with every outbound fetch JupyterLab knows about (news feed,
update check, extension manager index) switched off, so a run needs no network.

`NotebookPage` wraps a Playwright page showing one notebook and offers the few
operations the tests need: wait for the kernel, run a cell, find its outputs.
Every wait is Playwright's own (or a bounded poll of the REST API); nothing
sleeps for a fixed time to synchronise.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
from playwright.sync_api import Locator, Page, expect

__all__ = [
    "CHROMIUM_ARGS",
    "REPO_ROOT",
    "SCREENSHOT_DIR",
    "LabServer",
    "NotebookPage",
    "find_chromium",
    "running_in_ci",
    "start_lab",
    "stop_lab",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = REPO_ROOT / "test-artifacts" / "browser"

#: Flags known to work for headless Debian Chromium in containers and CI runners.
CHROMIUM_ARGS: list[str] = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

SERVER_START_TIMEOUT_S = 90.0
SERVER_STOP_TIMEOUT_S = 30.0

# Settings written into the private user-settings directory: never ask about or
# fetch Jupyter news and never check for updates (each would be a request
# off-host); start the default kernel instead of asking for one; attach every
# cell to the DOM (no windowing) so locators see the whole notebook.
_LAB_USER_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {
        "autoStartDefaultKernel": True,
        "windowingMode": "none",
    },
}


def running_in_ci() -> bool:
    """True when the usual CI environment variable is set to a true value."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_chromium() -> str | None:
    """Path of the system Chromium (Debian ships it as ``chromium``), or None."""
    override = os.environ.get("SANDBOX_MAGIC_CHROMIUM")
    if override:
        return shutil.which(override) or (override if Path(override).is_file() else None)
    for name in ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LabServer:
    """A running JupyterLab server owned by the test session."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    seen_children: set[int] = field(default_factory=set)

    def api(self, path: str, method: str = "GET") -> Any:
        """Call ``/api/<path>`` with the token; return the decoded JSON body, if any."""
        request = urllib.request.Request(
            f"{self.url}/api/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def notebook_url(self, relative_path: str, workspace: str) -> str:
        """URL opening ``relative_path`` in a named workspace.

        Lab stores each workspace's layout on the server and restores it on the
        next visit; a fresh workspace per page keeps tabs of earlier tests out.
        """
        return (
            f"{self.url}/lab/workspaces/{quote(workspace)}/tree/{quote(relative_path)}"
            f"?token={self.token}"
        )

    def shutdown_sessions(self) -> None:
        """Shut down every notebook session (and so its kernel) through the REST API."""
        self.record_children()
        for session in self.api("sessions"):
            self.api(f"sessions/{session['id']}", method="DELETE")

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "<no server log>"
        return "\n".join(text.splitlines()[-lines:])

    def record_children(self) -> None:
        """Remember every current descendant (kernels, their helpers) for the teardown check."""
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                self.seen_children.add(child.pid)


def _write_user_settings(settings_dir: Path) -> None:
    for relative, values in _LAB_USER_SETTINGS.items():
        target = settings_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values, indent=2))


def start_lab(root_dir: Path, state_dir: Path) -> LabServer:
    """Start JupyterLab serving ``root_dir``; private config/data/runtime live in ``state_dir``."""
    token = secrets.token_hex(24)
    port = _free_port()
    settings_dir = state_dir / "lab-user-settings"
    _write_user_settings(settings_dir)
    env = dict(os.environ)
    for var, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        (state_dir / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(state_dir / sub)
    env.pop("JUPYTER_TOKEN", None)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.open_browser=False",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        f"--LabApp.user_settings_dir={settings_dir}",
        f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # CI containers often run as root; Jupyter refuses that unless told otherwise.
        command.append("--allow-root")
    log_path = state_dir / "jupyterlab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = LabServer(
        url=f"http://127.0.0.1:{port}",
        token=token,
        root_dir=root_dir,
        process=process,
        log_path=log_path,
    )
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with {process.returncode} before answering:\n"
                + server.log_tail()
            )
        try:
            server.api("status")
            return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            stop_lab(server)
            raise RuntimeError(
                f"JupyterLab did not answer /api/status within {SERVER_START_TIMEOUT_S:.0f}s:\n"
                + server.log_tail()
            )
        # Polling interval for an external process; not used as synchronisation.
        time.sleep(0.2)


def stop_lab(server: LabServer) -> list[str]:
    """Stop the server (SIGTERM lets it shut its kernels down), then anything left behind.

    Returns a description of each process that was still alive after the server
    exited and had to be killed; an empty list means a clean shutdown.
    """
    server.record_children()
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    leftovers: list[psutil.Process] = []
    for pid in sorted(server.seen_children):
        with contextlib.suppress(psutil.NoSuchProcess):
            child = psutil.Process(pid)
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                leftovers.append(child)
    # Give kernels that are mid-exit a bounded moment before calling them leftovers.
    _, alive = psutil.wait_procs(leftovers, timeout=5)
    described: list[str] = []
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            described.append(f"{child.pid} {' '.join(child.cmdline())[:200]}")
            child.kill()
    psutil.wait_procs(alive, timeout=5)
    return described


class NotebookPage:
    """One notebook open in JupyterLab, driven through the real UI."""

    def __init__(self, page: Page, server: LabServer, relative_path: str) -> None:
        self.page = page
        self.server = server
        self.relative_path = relative_path
        self.workspace = f"test-{secrets.token_hex(4)}"
        self._panel_id: str | None = None

    # --- opening -------------------------------------------------------------

    def open(self, timeout_ms: float = 90_000) -> None:
        """Open the notebook and wait until its kernel is started and idle."""
        url = self.server.notebook_url(self.relative_path, self.workspace)
        self.page.goto(url, timeout=timeout_ms)
        name = Path(self.relative_path).name
        tab = self.page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab").filter(
            has=self.page.locator(
                ".lm-TabBar-tabLabel", has_text=re.compile(rf"^{re.escape(name)}$")
            )
        )
        expect(tab).to_have_count(1, timeout=timeout_ms)
        self._panel_id = tab.get_attribute("data-id")
        assert self._panel_id, f"the tab of {name} names no panel"
        expect(self.notebook.locator(".jp-Cell").first).to_be_visible(timeout=timeout_ms)
        self.wait_for_kernel_idle(timeout_ms)
        self.server.record_children()

    @property
    def panel(self) -> Locator:
        """The notebook panel of this notebook (found through its tab)."""
        if self._panel_id is None:
            raise RuntimeError("open() the notebook first")
        return self.page.locator(f"[id='{self._panel_id}']")

    @property
    def notebook(self) -> Locator:
        return self.panel.locator(".jp-Notebook")

    def wait_for_kernel_idle(self, timeout_ms: float = 90_000) -> None:
        """Wait until the notebook's kernel is started, connected and idle.

        Two signals from the page must agree: the status bar's kernel item reads
        "<kernel name> | Idle" (before the kernel exists it says "No Kernel |
        Initializing", then "Connecting"), and the toolbar's execution indicator
        has ``data-status="idle"``. The websocket is then connected, so
        ipywidgets' manager receives comm messages from the first cell on.
        """
        kernel_item = self.page.locator(
            ".jp-StatusBar-TextItem", has_text=re.compile(r"^(?!No Kernel).+ \| Idle$")
        )
        expect(kernel_item).to_have_count(1, timeout=timeout_ms)
        indicator = self.panel.locator(".jp-Notebook-ExecutionIndicator")
        expect(indicator).to_have_attribute("data-status", "idle", timeout=timeout_ms)

    # --- cells ---------------------------------------------------------------

    def cell(self, index: int) -> Locator:
        return self.notebook.locator(".jp-Cell").nth(index)

    def code_cell_indices(self) -> list[int]:
        classes = self.notebook.locator(".jp-Cell").evaluate_all(
            "cells => cells.map(c => c.className)"
        )
        return [i for i, names in enumerate(classes) if "jp-CodeCell" in names.split()]

    def outputs(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea-output")

    def run_cell(self, index: int) -> None:
        """Select cell ``index`` and run it with Ctrl+Enter (returns once it is queued).

        Ctrl+Enter runs the selected cell and keeps it selected, so running the
        last cell does not append an empty one (as Shift+Enter would).
        """
        cell = self.cell(index)
        # Clicking the prompt selects the cell in command mode without moving the caret.
        cell.locator(".jp-InputPrompt").click()
        expect(cell).to_have_class(re.compile(r"\bjp-mod-active\b"))
        self.page.keyboard.press("Control+Enter")
        # Lab shows "[*]:" once the execute request is sent.
        expect(cell.locator(".jp-InputPrompt")).to_have_text(
            re.compile(r"\[(\*|\d+)\]:"), timeout=10_000
        )

    def wait_for_cell_done(self, index: int, timeout_ms: float = 120_000) -> None:
        """Wait until cell ``index`` shows an execution count (``[n]:``), i.e. it finished."""
        expect(self.cell(index).locator(".jp-InputPrompt")).to_have_text(
            re.compile(r"\[\d+\]:"), timeout=timeout_ms
        )
        self.server.record_children()

    def collapse_left_sidebar(self) -> None:
        """Close the file browser panel so a screenshot shows more of the notebook."""
        current = self.page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
        if current.count():
            current.click()
            expect(current).to_have_count(0)

    def screenshot(self, name: str, target: Locator | None = None) -> Path:
        """Save a PNG under ``test-artifacts/browser/`` and return its path."""
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOT_DIR / f"{name}.png"
        if target is None:
            self.page.screenshot(path=str(path))
        else:
            target.screenshot(path=str(path))
        return path
