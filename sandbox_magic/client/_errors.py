"""Every error that sandbox_magic raises, in one hierarchy.

```
SandboxError                      anything that went wrong talking to a sandbox
├── SandboxConnectionError        the server could not be reached (names the URL)
├── SandboxTimeoutError           a local deadline passed (waiting for a run, retries)
├── SandboxProtocolError          the server answered something that breaks the contract
├── SandboxAPIError               the server answered with an error status
│   ├── InvalidRequestError       400, 409, 413, 422: the request itself is wrong
│   ├── AuthenticationError       401, 403: missing or wrong API key
│   ├── NotFoundError             404: unknown sandbox, context, run or artifact
│   ├── RateLimitedError          429: too many requests (carries retry_after)
│   ├── QuotaExceededError        429 or 403 with code quota_exceeded: a limit of the key
│   └── ServerError               5xx: the service failed or is unavailable
├── ArtifactTooLargeError         an artifact is bigger than the caller's byte limit
├── RunFailedError                a run ended failed (timeout, dead kernel, ...)
│   └── RunCancelledError         a run ended cancelled
└── RemoteExecutionError          the cell's code raised an exception remotely
```

Messages say what happened in plain words, usable from a script; the notebook adds
its own hints (which notebook command helps) through `SandboxError.hint`. None of
them ever contains the API key: request headers are never part of an error, and URLs
are shown without credentials.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox_magic.client._models import Run

__all__ = [
    "ArtifactTooLargeError",
    "AuthenticationError",
    "InvalidRequestError",
    "NotFoundError",
    "QuotaExceededError",
    "RateLimitedError",
    "RemoteExecutionError",
    "RunCancelledError",
    "RunFailedError",
    "SandboxAPIError",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxProtocolError",
    "SandboxTimeoutError",
    "ServerError",
    "api_error_for_status",
]


class SandboxError(Exception):
    """Base class of every sandbox_magic error.

    ``run_id`` names the run the error is about, when there is one; ``hint`` is a
    sentence a caller may add (the notebook names the command that helps).
    """

    run_id: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        message = super().__str__()
        return f"{message} {self.hint}" if self.hint else message

    def _render_traceback_(self) -> list[str]:
        """Show the message alone: an internal Python traceback would not help the user."""
        return [f"{type(self).__name__}: {self}"]


class SandboxConnectionError(SandboxError):
    """The sandbox server could not be reached."""

    def __init__(self, url: str, detail: str) -> None:
        self.url = url
        self.detail = detail
        super().__init__(
            f"Cannot reach the sandbox server at {url}: {detail}. "
            "Check that it is running and the URL is right, "
            "or unset the URL to use the embedded local server."
        )


class SandboxTimeoutError(SandboxError):
    """A local deadline passed before the server gave a final answer."""


class SandboxProtocolError(SandboxError):
    """The server's reply does not follow the wire contract."""


class SandboxAPIError(SandboxError):
    """The server answered with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.code = code
        self.request_id = request_id
        self.retryable = retryable
        super().__init__(self._describe())

    def _describe(self) -> str:
        parts = [f"{self.message} (HTTP {self.status_code}"]
        if self.code:
            parts.append(f", code {self.code}")
        if self.request_id:
            parts.append(f", request {self.request_id}")
        parts.append(")")
        return "".join(parts)


class InvalidRequestError(SandboxAPIError):
    """The request was refused as malformed, too large or conflicting."""


class AuthenticationError(SandboxAPIError):
    """The API key is missing or not accepted."""

    def _describe(self) -> str:
        return super()._describe() + ". Set NULLSPACE_API_KEY to a valid key (it is never shown)."


class NotFoundError(SandboxAPIError):
    """The sandbox, context, run or artifact does not exist (any more)."""


class RateLimitedError(SandboxAPIError):
    """Too many requests; `retry_after` says how long the server asked to wait."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class QuotaExceededError(SandboxAPIError):
    """A limit of the API key was reached (the message names it); retrying will not help."""


class ServerError(SandboxAPIError):
    """The server failed (5xx) or cannot take the request now."""


def api_error_for_status(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    request_id: str | None = None,
    retryable: bool | None = None,
    retry_after: float | None = None,
) -> SandboxAPIError:
    """Build the error subclass that matches an HTTP status."""
    common: dict[str, Any] = {
        "status_code": status_code,
        "code": code,
        "request_id": request_id,
        "retryable": retryable,
    }
    if code == "quota_exceeded" and status_code in (403, 429):
        return QuotaExceededError(message, **common)
    if status_code in (401, 403):
        return AuthenticationError(message, **common)
    if status_code == 404:
        return NotFoundError(message, **common)
    if status_code == 429:
        return RateLimitedError(message, retry_after=retry_after, **common)
    if status_code >= 500:
        return ServerError(message, **common)
    if 400 <= status_code < 500:
        return InvalidRequestError(message, **common)
    return SandboxAPIError(message, **common)


class ArtifactTooLargeError(SandboxError):
    """An artifact download was refused because it exceeds the caller's byte limit."""

    def __init__(self, artifact_id: str, limit: int, size: int | None = None) -> None:
        self.artifact_id = artifact_id
        self.limit = limit
        self.size = size
        actual = f"{size} bytes" if size is not None else "more than that"
        super().__init__(
            f"Artifact {artifact_id} is too large to fetch: the limit is {limit} bytes, "
            f"it has {actual}. Use its download link instead."
        )


class RunFailedError(SandboxError):
    """A run ended without completing: it failed (timeout, dead kernel) or was cancelled."""

    def __init__(self, run: Run) -> None:
        self.run = run
        reason = run.failure_reason or "no reason given by the server"
        super().__init__(f"Remote run {run.id} ended {run.status}: {reason}")


class RunCancelledError(RunFailedError):
    """A run ended cancelled (by an interrupt, a cancel request or another client)."""


class RemoteExecutionError(SandboxError):
    """The cell's code raised an exception in the sandbox.

    IPython shows it through `_render_traceback_`, so the cell displays the remote
    traceback (colours kept) instead of a local one, and fails like a local cell.
    """

    def __init__(
        self, name: str, value: str, traceback: Sequence[str], *, run_id: str | None = None
    ) -> None:
        self.name = name
        self.value = value
        self.traceback = list(traceback)
        self.run_id = run_id
        super().__init__(f"{name}: {value}" if value else name)

    def _render_traceback_(self) -> list[str]:
        if self.traceback:
            return list(self.traceback)
        return [f"{self.name}: {self.value}"]

    @classmethod
    def named(
        cls, name: str, value: str, traceback: Sequence[str], *, run_id: str | None = None
    ) -> RemoteExecutionError:
        """The error as an instance of a subclass called like the remote exception.

        A kernel reports a failed cell as ``type(exc).__name__`` and ``str(exc)`` (the
        ``ename``/``evalue`` that nbclient, papermill and the saved notebook keep), so
        the cell then fails as ``ZeroDivisionError: division by zero``, like a local
        one. It is still a `RemoteExecutionError`.
        """
        return _named_remote_error(name)(name, value, traceback, run_id=run_id)


class _NamedRemoteError(RemoteExecutionError):
    """Base of the per-name subclasses; its message is the remote value alone."""

    def __str__(self) -> str:
        return self.value or self.name


@functools.lru_cache(maxsize=256)
def _named_remote_error(name: str) -> type[RemoteExecutionError]:
    if not name.isidentifier():
        return RemoteExecutionError
    return type(name, (_NamedRemoteError,), {"__module__": "sandbox", "__qualname__": name})
