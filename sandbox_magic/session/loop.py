"""A private asyncio loop in a daemon thread, where all network I/O happens.

Why a thread and not the kernel's own loop (nested with ``nest-asyncio2``): a
blocking ``%%sandbox`` cell then waits on a plain future, so the notebook's stop
button raises ``KeyboardInterrupt`` in the cell's thread at a clean point, never
inside one of the kernel's own callbacks; and background runs keep polling while a
local cell is busy, because their loop is not the one the busy cell blocks.

One loop serves the whole session, so every run shares one HTTP connection pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["IOLoopThread"]

_T = TypeVar("_T")


class IOLoopThread:
    """Owns an event loop running in a daemon thread; coroutines are submitted to it."""

    def __init__(self, name: str = "sandbox-magic-io") -> None:
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started on first use."""
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                self._start()
            assert self._loop is not None
            return self._loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        # A fresh context: nothing of the calling cell's context (such as the
        # kernel's parent header) leaks into tasks that outlive the cell.
        thread = threading.Thread(target=contextvars.Context().run, args=(run,), daemon=True)
        thread.name = self._name
        thread.start()
        ready.wait()
        self._loop, self._thread = loop, thread

    def submit(self, coro: Coroutine[Any, Any, _T]) -> concurrent.futures.Future[_T]:
        """Schedule a coroutine on the I/O loop; returns a thread-safe future.

        The task runs in an empty context, so output it publishes later belongs to
        whichever cell is executing then, not to the cell that started it. Cancelling
        the returned future cancels the task.
        """
        loop = self.loop
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def copy_outcome(task: asyncio.Task[_T]) -> None:
            try:
                if task.cancelled():
                    future.cancel()
                elif (error := task.exception()) is not None:
                    future.set_exception(error)
                else:
                    future.set_result(task.result())
            except concurrent.futures.InvalidStateError:
                pass  # the caller cancelled the future first

        def start() -> None:
            if future.cancelled():
                coro.close()
                return
            task = loop.create_task(coro, context=contextvars.Context())
            task.add_done_callback(copy_outcome)
            future.add_done_callback(
                lambda f: loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None
            )

        loop.call_soon_threadsafe(start)
        return future

    def run(self, coro: Coroutine[Any, Any, _T], timeout: float | None = None) -> _T:
        """Run a coroutine on the I/O loop and wait for its result."""
        return self.submit(coro).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel outstanding tasks, stop the loop and join the thread."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or not thread.is_alive():
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_asyncgens()

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()
