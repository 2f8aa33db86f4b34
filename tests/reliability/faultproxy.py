"""A fault-injecting HTTP reverse proxy for the reliability tests.

It listens on 127.0.0.1, forwards each request to one upstream server (the real local
server) and, when its plan says so, spoils the exchange on the way:

==================  =========================================================  ==========
fault               what the client sees                                       upstream
==================  =========================================================  ==========
``503``             503 with a retryable JSON error                            untouched
``429``             429 with ``Retry-After``                                   untouched
``drop``            the connection closes before any answer                    untouched
``drop_after``      the connection closes before any answer                    **acted**
``stall_after``     no answer for longer than the client's read timeout        **acted**
``truncate``        the body stops halfway (Content-Length promised more)      **acted**
``truncate_json``   a complete reply whose JSON is cut halfway                 **acted**
``junk``            the JSON body rewritten by the plan's ``mutate`` function  **acted**
==================  =========================================================  ==========

"Acted" means the request already reached the server, e.g. a run was created, so a
client that retries must not create a second one.

The proxy runs an asyncio loop in a daemon thread. It is bounded: a stall never lasts
beyond ``stall_seconds``, and the whole proxy shuts itself down after ``lifetime``
seconds even if a test forgets to stop it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["FAULTS", "Exchange", "FaultProxy", "Plan"]

FAULTS = (
    "503",
    "429",
    "drop",
    "drop_after",
    "stall_after",
    "truncate",
    "truncate_json",
    "junk",
)
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "host",
        "accept-encoding",
    }
)


@dataclass(frozen=True)
class Exchange:
    """One request as the proxy received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


#: Decides the fault for a request (None: pass it through untouched).
Plan = Callable[[Exchange], str | None]


@dataclass
class _Reply:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class FaultProxy:
    """See the module docstring. ``start()`` returns the proxy's URL."""

    upstream: str
    plan: Plan = lambda exchange: None
    stall_seconds: float = 2.0
    retry_after: str = "1"
    mutate: Callable[[Any], Any] | None = None
    lifetime: float = 900.0
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    requests: int = 0
    log: list[tuple[str, str, str | None]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _stopped: asyncio.Event | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    url: str = field(default="", init=False)

    # -- lifetime -----------------------------------------------------------------------

    def start(self) -> str:
        ready = threading.Event()
        failure: list[BaseException] = []

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as error:  # surfaced to start()
                failure.append(error)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=main, name="fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failure:
            raise RuntimeError(f"the fault proxy did not start: {failure}")
        return self.url

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), "the fault proxy did not stop"

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    # -- serving ------------------------------------------------------------------------

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()
        async with httpx.AsyncClient(base_url=self.upstream, timeout=60.0) as upstream:

            async def on_connect(
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter
            ) -> None:
                task = asyncio.current_task()
                assert task is not None
                handlers.add(task)
                try:
                    await self._connection(reader, writer, upstream)
                except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                    pass
                finally:
                    handlers.discard(task)
                    writer.close()

            server = await asyncio.start_server(on_connect, "127.0.0.1", 0, limit=2**24)
            port = server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
            ready.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.lifetime):
                    await self._stopped.wait()
            server.close()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await server.wait_closed()

    async def _connection(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: httpx.AsyncClient,
    ) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return  # the client closed its keep-alive connection
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, _ = request_line.split(" ", 2)
            headers: dict[str, str] = {}
            for line in header_lines:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            exchange = Exchange(method, target, headers, body)
            fault = self.plan(exchange)
            with self._lock:
                self.requests += 1
                if fault is not None:
                    self.injected[fault] += 1
                self.log.append((method, target.split("?")[0], fault))
            if not await self._answer(exchange, fault, writer, upstream):
                return

    async def _answer(
        self,
        exchange: Exchange,
        fault: str | None,
        writer: asyncio.StreamWriter,
        upstream: httpx.AsyncClient,
    ) -> bool:
        """Answer one request; False when the connection must close."""
        if fault == "503":
            await self._send(writer, _error(503, "machine_not_ready", "injected: not ready"))
            return True
        if fault == "429":
            reply = _error(429, "rate_limit_exceeded", "injected: slow down")
            reply.headers.append(("retry-after", self.retry_after))
            await self._send(writer, reply)
            return True
        if fault == "drop":
            return False
        reply = await self._forward(exchange, upstream)
        if fault == "drop_after":
            return False
        if fault == "stall_after":
            await asyncio.sleep(self.stall_seconds)
            return False
        if fault == "truncate":
            await self._send(writer, reply, cut=True)
            return False
        if fault == "truncate_json":
            reply.body = reply.body[: len(reply.body) // 2]
        elif fault == "junk" and self.mutate is not None:
            with contextlib.suppress(ValueError):
                mutated = self.mutate(json.loads(reply.body))
                reply.body = json.dumps(mutated).encode()
        await self._send(writer, reply)
        return True

    @staticmethod
    async def _forward(exchange: Exchange, upstream: httpx.AsyncClient) -> _Reply:
        headers = {k: v for k, v in exchange.headers.items() if k not in _HOP_BY_HOP}
        response = await upstream.request(
            exchange.method, exchange.path, headers=headers, content=exchange.body
        )
        kept = [(k, v) for k, v in response.headers.items() if k.lower() not in _HOP_BY_HOP]
        return _Reply(response.status_code, response.reason_phrase, kept, response.content)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, reply: _Reply, *, cut: bool = False) -> None:
        lines = [f"HTTP/1.1 {reply.status} {reply.reason or 'Status'}"]
        lines += [f"{name}: {value}" for name, value in reply.headers]
        lines += [f"content-length: {len(reply.body)}", "connection: keep-alive", "", ""]
        body = reply.body[: len(reply.body) // 2] if cut else reply.body
        writer.write("\r\n".join(lines).encode("latin-1") + body)
        await writer.drain()


def _error(status: int, code: str, message: str) -> _Reply:
    body = {"error": {"message": message, "code": code, "retryable": True}}
    return _Reply(
        status,
        "Injected",
        [("content-type", "application/json")],
        json.dumps(body).encode(),
    )
