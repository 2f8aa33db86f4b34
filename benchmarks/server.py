"""The local server the benchmarks run against, and a proxy that counts its requests.

`LocalServer.start` launches ``sandbox-magic serve --port 0`` as a child process with a
fresh token and state directory, exactly as a user would; `CountingProxy` sits in
front of it on another loopback port and counts requests by method and path, so that
the poll load of a client is measured where it lands, not where it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

__all__ = ["CountingProxy", "LocalServer", "kernel_processes"]

_READY = "sandbox-magic server ready at "
_STARTUP_TIMEOUT = 90.0


def kernel_processes(root_pid: int) -> list[psutil.Process]:
    """The Jupyter kernel processes below ``root_pid`` (not the bwrap ones around them)."""
    found = []
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process(root_pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.name() != "bwrap" and any("ipykernel" in p for p in child.cmdline()):
                    found.append(child)
    return found


@dataclass
class LocalServer:
    """A running ``sandbox-magic serve`` child process."""

    url: str
    token: str
    state_dir: Path
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        state_dir: Path,
        *,
        warm_kernels: int = 1,
        extra_args: list[str] | None = None,
        isolation: str = "none",
    ) -> LocalServer:
        """Start a server on a free loopback port and wait for its ready line.

        Unconfined by default, so figures compare across machines with and without
        bubblewrap; `benchmarks.isolation` measures what confinement costs.
        """
        token = secrets.token_urlsafe(24)
        command = [
            sys.executable, "-m", "sandbox_magic", "serve",
            "--host", "127.0.0.1", "--port", "0",
            "--state-dir", str(state_dir),
            "--warm-kernels", str(warm_kernels),
            "--isolation", isolation,
            *(extra_args or []),
        ]  # fmt: skip
        env = dict(os.environ, SANDBOX_MAGIC_TOKEN=token, PYTHONUNBUFFERED="1")
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        assert process.stdout is not None
        output: list[str] = []
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        url = ""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while not url:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or process.poll() is not None:
                    process.kill()
                    raise RuntimeError("the local server did not start:\n" + "".join(output))
                if selector.select(timeout=remaining):
                    line = process.stdout.readline()
                    output.append(line)
                    if line.startswith(_READY):
                        url = line[len(_READY) :].strip()
        threading.Thread(target=_drain, args=(process.stdout, output), daemon=True).start()
        return cls(url=url, token=token, state_dir=state_dir, process=process, output=output)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def client(self, base_url: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=base_url or self.url, headers=self.headers, timeout=60.0)

    def kernels(self) -> list[psutil.Process]:
        return kernel_processes(self.process.pid)

    def wait_for_idle_kernels(self, count: int, timeout: float = 60.0) -> None:
        """Wait until ``count`` kernels exist and none is busy starting (CPU quiet)."""
        deadline = time.monotonic() + timeout
        quiet_samples = 0
        while quiet_samples < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} idle kernels did not appear in {timeout:.0f} s")
            kernels = self.kernels()
            if len(kernels) < count:
                quiet_samples = 0
                time.sleep(0.1)
                continue
            busy = 0.0
            for kernel in kernels:
                with contextlib.suppress(psutil.Error):
                    kernel.cpu_percent(None)
            time.sleep(0.2)
            for kernel in kernels:
                with contextlib.suppress(psutil.Error):
                    busy = max(busy, kernel.cpu_percent(None))
            quiet_samples = quiet_samples + 1 if busy < 5.0 else 0

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then wait for the server and its kernels; kill what is left."""
        children = []
        with contextlib.suppress(psutil.Error):
            children = psutil.Process(self.process.pid).children(recursive=True)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        _, alive = psutil.wait_procs(children, timeout=timeout)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()


def _drain(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"^content-length:\s*(\d+)\s*$", re.IGNORECASE | re.MULTILINE)
_CHUNKED = re.compile(rb"^transfer-encoding:\s*chunked\s*$", re.IGNORECASE | re.MULTILINE)


class CountingProxy:
    """An HTTP/1.1 pass-through proxy on loopback that counts requests by method and path.

    Requests are framed by ``Content-Length`` (every client here sends one); responses
    are piped back untouched. It runs its own event loop in a daemon thread.
    """

    def __init__(self, upstream: str) -> None:
        parsed = httpx.URL(upstream)
        self._host = parsed.host
        self._port = parsed.port or 80
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.url = ""

    def start(self) -> CountingProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.url = future.result(10)
        return self

    async def _listen(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def counts(self) -> Counter[tuple[str, str]]:
        """A copy of the counts so far, keyed by ``(method, path)``."""
        with self._lock:
            return Counter(self._counts)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        except OSError:
            writer.close()
            self._handlers.discard(task)
            return
        self._writers.update((writer, up_writer))
        back = asyncio.create_task(_pipe(up_reader, writer))
        try:
            while True:
                try:
                    head = await reader.readuntil(_HEAD_END)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    break
                if _CHUNKED.search(head):
                    raise RuntimeError("CountingProxy does not frame chunked request bodies")
                length = _CONTENT_LENGTH.search(head)
                body = await reader.readexactly(int(length.group(1))) if length else b""
                method, _, rest = head.partition(b" ")
                path = rest.partition(b" ")[0].partition(b"?")[0]
                with self._lock:
                    self._counts[(method.decode("ascii"), path.decode("ascii"))] += 1
                up_writer.write(head + body)
                await up_writer.drain()
        finally:
            up_writer.close()
            with contextlib.suppress(Exception):
                await back
            writer.close()
            self._writers.difference_update((writer, up_writer))
            self._handlers.discard(task)

    def stop(self) -> None:
        """Close the listener and every connection, then the loop."""

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.close()  # both ends then read EOF and their handlers return
            if self._handlers:
                await asyncio.wait(list(self._handlers), timeout=5)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
