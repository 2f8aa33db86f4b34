"""Plain blocking calls over a session, for code that is not on the I/O loop.

Each call runs on the session's I/O loop and waits at most its timeout: one place for
the timeouts of the management calls (``%sandbox`` subcommands), instead of each
caller choosing its own.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from sandbox_magic.client import Artifact, AsyncSandboxClient, Context, NotFoundError, Page, Run
from sandbox_magic.session.loop import IOLoopThread
from sandbox_magic.session.sandbox_session import SandboxSession

__all__ = ["BlockingSession"]

_T = TypeVar("_T")

#: Seconds for a quick request (a listing, a cancel, a health check).
QUICK = 60.0
#: Seconds for a slow one (restarting a kernel, downloading a file).
SLOW = 120.0


class BlockingSession:
    """The session's server calls as blocking methods with bounded waits."""

    def __init__(self, io: IOLoopThread, session: SandboxSession) -> None:
        self.io = io
        self.session = session

    def _call(
        self, request: Callable[[AsyncSandboxClient], Coroutine[Any, Any, _T]], timeout: float
    ) -> _T:
        async def call() -> _T:
            return await request(await self.session.client())

        return self.io.run(call(), timeout)

    def health(self) -> bool:
        return self._call(lambda c: c.health(), QUICK)

    def api_generation(self) -> str:
        """The server's API generation (probed once per server)."""
        return self._call(lambda c: c.api_generation(), QUICK)

    def health_details(self) -> dict[str, Any] | None:
        """The server's ``/healthz`` body (isolation, limits…), or None if unhealthy."""
        return self._call(lambda c: c.health_details(), QUICK)

    def account(self) -> dict[str, Any] | None:
        """What the server says about the key (name, quotas, usage), or None."""
        return self._call(lambda c: c.account(), QUICK)

    def list_contexts(self, sandbox_id: str) -> list[Context]:
        return self._call(lambda c: c.list_contexts(sandbox_id), QUICK)

    def restart_context(self, sandbox_id: str, context_id: str) -> None:
        self._call(lambda c: c.restart_context(sandbox_id, context_id), SLOW)

    def interrupt_context(self, sandbox_id: str, context_id: str) -> None:
        self._call(lambda c: c.interrupt_context(sandbox_id, context_id), QUICK)

    def list_runs(self, sandbox_id: str, **filters: Any) -> Page[Run]:
        return self._call(lambda c: c.list_runs(sandbox_id, **filters), QUICK)

    def get_run(self, sandbox_id: str, run_id: str) -> Run:
        return self._call(lambda c: c.get_run(sandbox_id, run_id), QUICK)

    def find_run(self, sandbox_ids: Sequence[str], run_id: str) -> tuple[str, Run] | None:
        """The run and its sandbox, looked up in each sandbox in turn; None if unknown."""
        for sandbox_id in dict.fromkeys(sandbox_ids):
            try:
                return sandbox_id, self.get_run(sandbox_id, run_id)
            except NotFoundError:
                continue
        return None

    def cancel_run(self, sandbox_id: str, run_id: str) -> Run:
        return self._call(lambda c: c.cancel_run(sandbox_id, run_id), QUICK)

    def list_artifacts(self, sandbox_id: str, **filters: Any) -> Page[Artifact]:
        return self._call(lambda c: c.list_artifacts(sandbox_id, **filters), QUICK)

    def download_artifact(self, sandbox_id: str, artifact_id: str, max_bytes: int) -> bytes:
        return self._call(
            lambda c: c.download_artifact(sandbox_id, artifact_id, max_bytes=max_bytes), SLOW
        )

    def delete_sandbox(self) -> str | None:
        return self.io.run(self.session.delete_sandbox(), QUICK)
