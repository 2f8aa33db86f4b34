"""The client side of the wire contract, usable from any Python program.

`AsyncSandboxClient` speaks HTTP to a sandbox server (one connection pool, bearer
auth, idempotency keys, bounded retries); the models parse its replies tolerantly;
`follow_run` follows a run to its end (watching it where the server offers that,
else by `poll_run`); `OutputCursor` turns successive snapshots into
new outputs; `save_artifacts` downloads files under a size cap with sha256 checks.
Every error is a `SandboxError`. The modules behind this package are private: import
from ``sandbox_magic.client``. Nothing here imports IPython.
"""

from sandbox_magic.client._client import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    AsyncSandboxClient,
    new_idempotency_key,
)
from sandbox_magic.client._cursor import Output, OutputCursor, StreamChunk, ordered_outputs
from sandbox_magic.client._download import (
    DEFAULT_MAX_DOWNLOAD_BYTES,
    ArtifactIntegrityError,
    SavedArtifact,
    safe_file_name,
    save_artifacts,
    unique_file_names,
)
from sandbox_magic.client._errors import (
    ArtifactTooLargeError,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    QuotaExceededError,
    RateLimitedError,
    RemoteExecutionError,
    RunCancelledError,
    RunFailedError,
    SandboxAPIError,
    SandboxConnectionError,
    SandboxError,
    SandboxProtocolError,
    SandboxTimeoutError,
    ServerError,
    api_error_for_status,
)
from sandbox_magic.client._models import (
    Artifact,
    Context,
    Execution,
    ExecutionError,
    Logs,
    OutputRef,
    Page,
    Result,
    Run,
    Sandbox,
    decode_base64,
    parse_timestamp,
)
from sandbox_magic.client._poller import (
    DEFAULT_DEADLINE_SLACK,
    PollPolicy,
    RunSource,
    poll_run,
    progress_key,
    run_deadline,
)
from sandbox_magic.client._retry import Clock, RetryPolicy, Sleep, parse_retry_after, retry_async
from sandbox_magic.client._watch import SUBMIT_SETTLE, follow_run

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_DEADLINE_SLACK",
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "DEFAULT_READ_TIMEOUT",
    "SUBMIT_SETTLE",
    "Artifact",
    "ArtifactIntegrityError",
    "ArtifactTooLargeError",
    "AsyncSandboxClient",
    "AuthenticationError",
    "Clock",
    "Context",
    "Execution",
    "ExecutionError",
    "InvalidRequestError",
    "Logs",
    "NotFoundError",
    "Output",
    "OutputCursor",
    "OutputRef",
    "Page",
    "PollPolicy",
    "QuotaExceededError",
    "RateLimitedError",
    "RemoteExecutionError",
    "Result",
    "RetryPolicy",
    "Run",
    "RunCancelledError",
    "RunFailedError",
    "RunSource",
    "Sandbox",
    "SandboxAPIError",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxProtocolError",
    "SandboxTimeoutError",
    "SavedArtifact",
    "ServerError",
    "Sleep",
    "StreamChunk",
    "api_error_for_status",
    "decode_base64",
    "follow_run",
    "new_idempotency_key",
    "ordered_outputs",
    "parse_retry_after",
    "parse_timestamp",
    "poll_run",
    "progress_key",
    "retry_async",
    "run_deadline",
    "safe_file_name",
    "save_artifacts",
    "unique_file_names",
]

# Objects show the package as their home, as httpx does.
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("sandbox_magic.client._"):
        _obj.__module__ = __name__
del _name, _obj
