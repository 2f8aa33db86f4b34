"""Shared fixtures: the real local server, as a subprocess or in-process.

Interface (kept stable for every test package):

- ``live_server`` (session): a real ``sandbox-magic serve --port 0`` subprocess with a
  random token and its own state dir. Attributes: ``url``, ``token``, ``state_dir``,
  ``process``; helpers ``headers`` and ``client()`` (an ``httpx.Client`` with the
  token). Use a fresh sandbox per test, so tests never see each other's state.
- ``server_factory`` (function): ``server_factory(state_dir=None, token=None,
  *extra_args)`` starts another server (for restart or crash tests); every server it
  started is stopped at teardown.
- ``ip`` (session): the process-wide IPython test shell (`InteractiveShell`), shared
  by every package that drives magics or display code in-process.
- ``asgi_server`` (session, anyio): the app in-process, lifespan entered. Attributes:
  ``app``, ``token``, ``state_dir``; ``client()`` gives an ``httpx.AsyncClient`` over
  ``httpx.ASGITransport``. Tests using it are ``@pytest.mark.anyio``.

Stopping any server asserts that no process it started (kernels included) is left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import IPython
import psutil
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython

from sandbox_magic.server.workspace_disk import WorkspaceDisks

READY = "sandbox-magic server ready at "


@pytest.fixture(scope="session")
def ip() -> InteractiveShell:
    """The process-wide test shell; ``start_ipython()`` gives None once it is started."""
    shell = start_ipython() or IPython.get_ipython()
    assert isinstance(shell, InteractiveShell)
    return shell


STARTUP_TIMEOUT = 60.0


@dataclass
class LiveServer:
    """A running ``sandbox-magic serve`` subprocess."""

    url: str
    token: str
    state_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, **kwargs: Any) -> httpx.Client:
        """A client with the token and a generous timeout."""
        kwargs.setdefault("timeout", 60.0)
        return httpx.Client(base_url=self.url, headers=self.headers, **kwargs)

    def descendants(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return psutil.Process(self.process.pid).children(recursive=True)
        return []

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
        """Stop the server with ``sig``; assert that it and its kernels are gone."""
        children = self.descendants()
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"the server ignored signal {sig} for {timeout} s") from None
        _, alive = psutil.wait_procs(children, timeout=timeout)
        leftovers = [p for p in alive if _is_running(p)]
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        assert not leftovers, f"processes left behind by the server: {leftovers}"


def _uses_runtime_dir(process: psutil.Process, runtime_dir: str) -> bool:
    try:
        return any(part.startswith(runtime_dir) for part in process.cmdline())
    except psutil.Error:
        return False


def _is_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _drain(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


def start_server(
    state_dir: Path,
    token: str | None = None,
    *extra_args: str,
    warm_kernels: int = 1,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], Any] | None = None,
) -> LiveServer:
    """Start ``sandbox-magic serve --port 0`` and wait for its ready line."""
    token = token or secrets.token_urlsafe(16)
    command = [
        sys.executable,
        "-m",
        "sandbox_magic.cli",
        "serve",
        "--port",
        "0",
        "--state-dir",
        str(state_dir),
        "--warm-kernels",
        str(warm_kernels),
        *extra_args,
    ]
    env = dict(os.environ, **(env or {}), SANDBOX_MAGIC_TOKEN=token, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=preexec_fn,
    )
    assert process.stdout is not None
    output: list[str] = []
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"the server did not start; its output: {output}")
            if not selector.select(timeout=remaining):
                continue
            line = process.stdout.readline()
            output.append(line)
            if line.startswith(READY):
                url = line[len(READY) :].strip()
                break
    threading.Thread(target=_drain, args=(process.stdout, output), daemon=True).start()
    return LiveServer(url=url, token=token, state_dir=state_dir, process=process, output=output)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One real server for the whole session; use a fresh sandbox per test."""
    server = start_server(tmp_path_factory.mktemp("server-state"), warm_kernels=2)
    try:
        yield server
    finally:
        server.stop()


#: In the environment of the ``confined_server``: no sandbox may ever see it.
HOST_SECRET = "host-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="session")
def confined_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A real server with ``--isolation bwrap`` and a secret in its environment."""
    server = start_server(
        tmp_path_factory.mktemp("confined-state"),
        None,
        "--isolation",
        "bwrap",
        "--default-memory-mb",
        "512",
        env={"NULLSPACE_API_KEY": HOST_SECRET},
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def host_secret() -> str:
    """The secret in the ``confined_server``'s environment."""
    return HOST_SECRET


@pytest.fixture
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., LiveServer]]:
    """Start extra servers (e.g. to restart on the same state dir); all stopped after."""
    started: list[LiveServer] = []

    def factory(
        state_dir: Path | None = None, token: str | None = None, *args: str, **options: Any
    ) -> LiveServer:
        server = start_server(
            state_dir or tmp_path_factory.mktemp("server-state"), token, *args, **options
        )
        started.append(server)
        return server

    yield factory
    for server in started:
        if server.process.poll() is None:
            server.stop()
        # A server killed outright leaves its workspace disks mounted; its next start
        # on the same state directory would clean them up, as this does.
        disks = WorkspaceDisks(server.state_dir / "disks")
        disks.remove_stale(set(), server.state_dir / "sandboxes")


@dataclass
class AsgiServer:
    """The server app running in this process (no sockets)."""

    app: Any
    token: str
    state_dir: Path

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        kwargs.setdefault("timeout", 60.0)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://sandbox.test",
            headers={"Authorization": f"Bearer {self.token}"},
            **kwargs,
        )


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
async def asgi_server(
    anyio_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[AsgiServer]:
    """The app in-process with its lifespan entered (ASGITransport runs none)."""
    from sandbox_magic.server.app import create_app
    from sandbox_magic.server.config import ServerConfig

    state_dir = tmp_path_factory.mktemp("asgi-state")
    token = secrets.token_urlsafe(16)
    app = create_app(ServerConfig(state_dir=state_dir, token=token, interrupt_grace=2.0))
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    async with app.router.lifespan_context(app):
        runtime_dir = str(app.state.service.pool.runtime_dir)
        yield AsgiServer(app=app, token=token, state_dir=state_dir)
    # Only this app's kernels: their connection files live in its private runtime
    # directory. Other tests start kernels (and servers with kernels) of their own.
    started = [
        p
        for p in me.children(recursive=True)
        if p.pid not in before and _uses_runtime_dir(p, runtime_dir)
    ]
    _, alive = psutil.wait_procs(started, timeout=10)
    assert not [p for p in alive if _is_running(p)], f"kernels left behind: {alive}"
