"""Typed records for the wire contract, parsed tolerantly.

Parsing rules, the same for every record:

- a missing or wrongly typed *required* field (an object's ``id``, a run's
  ``status``) raises `SandboxProtocolError` naming the field's path;
- a missing optional field is fine, and a wrongly typed optional field is treated
  as missing (a server that sends ``"execution_count": "3"`` still shows its output);
- unknown fields are kept in ``extra``, so nothing the server said is lost.

Nothing here imports IPython.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from sandbox_magic.client._errors import SandboxProtocolError
from sandbox_magic.wire import MIME_BY_FIELD, TERMINAL_STATUSES

__all__ = [
    "MIME_BY_FIELD",
    "TERMINAL_STATUSES",
    "Artifact",
    "Context",
    "Execution",
    "ExecutionError",
    "Logs",
    "OutputRef",
    "Page",
    "Result",
    "Run",
    "Sandbox",
    "decode_base64",
    "parse_timestamp",
]

_T = TypeVar("_T")


def _require_object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SandboxProtocolError(
            f"Malformed reply from the sandbox server: {path} should be an object, "
            f"got {type(value).__name__}."
        )
    return value


def _require_str(obj: Mapping[str, Any], key: str, path: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        got = "nothing" if value is None else type(value).__name__
        raise SandboxProtocolError(
            f"Malformed reply from the sandbox server: {path}.{key} should be a "
            f"non-empty string, got {got}."
        )
    return value


def _opt(obj: Mapping[str, Any], key: str, kind: type[_T]) -> _T | None:
    value = obj.get(key)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    return None


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    return _opt(obj, key, str)


def _opt_int(obj: Mapping[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def _opt_dict(obj: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    return dict(value) if isinstance(value, Mapping) else {}


def _extra(obj: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in known}


def _list_of_objects(value: Any, path: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SandboxProtocolError(
            f"Malformed reply from the sandbox server: {path} should be a list, "
            f"got {type(value).__name__}."
        )
    return [_require_object(item, f"{path}[{i}]") for i, item in enumerate(value)]


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp; None when absent or unreadable."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def decode_base64(value: str) -> bytes | None:
    """Decode base64 (standard, padded or not, whitespace allowed); None when invalid."""
    compact = "".join(value.split())
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Sandbox:
    """A sandbox: an isolated machine (or, locally, a working directory) for contexts."""

    id: str
    status: str
    template: str | None = None
    vcpus: int | None = None
    memory_mb: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    started_at: str | None = None
    timeout_ms: int | None = None
    expires_at: str | None = None
    cwd: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset(
        {
            "id",
            "status",
            "template",
            "config",
            "metadata",
            "created_at",
            "started_at",
            "timeout_ms",
            "expires_at",
            "cwd",
        }
    )

    @classmethod
    def from_json(cls, value: Any, path: str = "sandbox") -> Sandbox:
        obj = _require_object(value, path)
        config = _opt_dict(obj, "config")
        return cls(
            id=_require_str(obj, "id", path),
            status=_require_str(obj, "status", path),
            template=_opt_str(obj, "template"),
            vcpus=_opt_int(config, "vcpus"),
            memory_mb=_opt_int(config, "memory_mb"),
            metadata=_opt_dict(obj, "metadata"),
            created_at=_opt_str(obj, "created_at"),
            started_at=_opt_str(obj, "started_at"),
            timeout_ms=_opt_int(obj, "timeout_ms"),
            expires_at=_opt_str(obj, "expires_at"),
            cwd=_opt_str(obj, "cwd"),
            extra=_extra(obj, cls._KNOWN),
        )


@dataclass(frozen=True, slots=True)
class Context:
    """A stateful kernel inside a sandbox: variables persist between its runs."""

    id: str
    language: str | None = None
    cwd: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset({"id", "language", "cwd"})

    @classmethod
    def from_json(cls, value: Any, path: str = "context") -> Context:
        obj = _require_object(value, path)
        return cls(
            id=_require_str(obj, "id", path),
            language=_opt_str(obj, "language"),
            cwd=_opt_str(obj, "cwd"),
            extra=_extra(obj, cls._KNOWN),
        )


@dataclass(frozen=True, slots=True)
class Result:
    """One rich output of a run, carrying any number of MIME representations."""

    text: str | None = None
    html: str | None = None
    markdown: str | None = None
    svg: str | None = None
    png: str | None = None
    jpeg: str | None = None
    pdf: str | None = None
    latex: str | None = None
    json: Any = None
    javascript: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    chart: Any = None
    is_main_result: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    _STRING_FIELDS = (
        "text",
        "html",
        "markdown",
        "svg",
        "png",
        "jpeg",
        "pdf",
        "latex",
        "javascript",
    )
    _KNOWN = frozenset((*_STRING_FIELDS, "json", "data", "chart", "is_main_result"))

    @classmethod
    def from_json(cls, value: Any, path: str = "result") -> Result:
        obj = _require_object(value, path)
        strings = {name: _opt_str(obj, name) for name in cls._STRING_FIELDS}
        return cls(
            **strings,
            json=obj.get("json"),
            data={str(k): v for k, v in _opt_dict(obj, "data").items()},
            chart=obj.get("chart"),
            is_main_result=obj.get("is_main_result") is True,
            extra=_extra(obj, cls._KNOWN),
        )

    def mime_bundle(self) -> dict[str, Any]:
        """All representations keyed by MIME type: ``data`` first, named fields over it.

        Binary types (png, jpeg, pdf) stay base64 text, as in a notebook file.
        """
        bundle: dict[str, Any] = dict(self.data)
        for name, mime in MIME_BY_FIELD.items():
            value = self.json if name == "json" else getattr(self, name)
            if value is not None:
                bundle[mime] = value
        return bundle


@dataclass(frozen=True, slots=True)
class Logs:
    """Standard output and error of a run, as the chunks arrived."""

    stdout: tuple[str, ...] = ()
    stderr: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Any, path: str = "logs") -> Logs:
        if value is None:
            return cls()
        obj = _require_object(value, path)
        return cls(stdout=_chunks(obj.get("stdout")), stderr=_chunks(obj.get("stderr")))


def _chunks(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


@dataclass(frozen=True, slots=True)
class ExecutionError:
    """An exception raised by the run's code."""

    name: str
    value: str
    traceback: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Any, path: str = "error") -> ExecutionError | None:
        if value is None:
            return None
        obj = _require_object(value, path)
        traceback = obj.get("traceback")
        if isinstance(traceback, str):
            lines: tuple[str, ...] = tuple(traceback.splitlines())
        elif isinstance(traceback, list):
            lines = tuple(str(line) for line in traceback)
        else:
            lines = ()
        return cls(
            name=_opt_str(obj, "name") or "Error",
            value=_opt_str(obj, "value") or "",
            traceback=lines,
        )


@dataclass(frozen=True, slots=True)
class Artifact:
    """A file a run produced."""

    id: str
    name: str | None = None
    kind: str | None = None
    mime_type: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    context_id: str | None = None
    execution_count: int | None = None
    created_at: str | None = None
    expires_at: str | None = None
    preview_url: str | None = None
    download_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset(
        {
            "id",
            "name",
            "kind",
            "mime_type",
            "size_bytes",
            "sha256",
            "context_id",
            "execution_count",
            "created_at",
            "expires_at",
            "preview_url",
            "download_url",
            "metadata",
        }
    )

    @classmethod
    def from_json(cls, value: Any, path: str = "artifact") -> Artifact:
        obj = _require_object(value, path)
        return cls(
            id=_require_str(obj, "id", path),
            name=_opt_str(obj, "name"),
            kind=_opt_str(obj, "kind"),
            mime_type=_opt_str(obj, "mime_type"),
            size_bytes=_opt_int(obj, "size_bytes"),
            sha256=_opt_str(obj, "sha256"),
            context_id=_opt_str(obj, "context_id"),
            execution_count=_opt_int(obj, "execution_count"),
            created_at=_opt_str(obj, "created_at"),
            expires_at=_opt_str(obj, "expires_at"),
            preview_url=_opt_str(obj, "preview_url"),
            download_url=_opt_str(obj, "download_url"),
            metadata=_opt_dict(obj, "metadata"),
            extra=_extra(obj, cls._KNOWN),
        )


@dataclass(frozen=True, slots=True)
class OutputRef:
    """One entry of ``execution.output_order`` (ours): which output came next.

    ``kind`` is ``stdout``, ``stderr`` or ``result``; ``index`` points into
    ``logs.stdout``, ``logs.stderr`` or ``results``. The local server sends this list so
    that prints and displays interleave as they happened; the hosted service may not, and
    then outputs are shown streams first, results after.
    """

    kind: str
    index: int


def _output_order(value: Any) -> tuple[OutputRef, ...] | None:
    if not isinstance(value, list):
        return None
    refs: list[OutputRef] = []
    for item in value:
        if not isinstance(item, Mapping):
            return None
        kind, index = item.get("type"), _opt_int(item, "index")
        if kind not in ("stdout", "stderr", "result") or index is None or index < 0:
            return None
        refs.append(OutputRef(kind, index))
    return tuple(refs)


@dataclass(frozen=True, slots=True)
class Execution:
    """What a run produced so far: results, artifacts, logs and an error."""

    results: tuple[Result, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    logs: Logs = field(default_factory=Logs)
    error: ExecutionError | None = None
    execution_count: int | None = None
    output_order: tuple[OutputRef, ...] | None = None

    @classmethod
    def from_json(cls, value: Any, path: str = "execution") -> Execution:
        if value is None:
            return cls()
        obj = _require_object(value, path)
        results = _list_of_objects(obj.get("results"), f"{path}.results")
        artifacts = _list_of_objects(obj.get("artifacts"), f"{path}.artifacts")
        return cls(
            results=tuple(
                Result.from_json(item, f"{path}.results[{i}]") for i, item in enumerate(results)
            ),
            artifacts=tuple(
                Artifact.from_json(item, f"{path}.artifacts[{i}]")
                for i, item in enumerate(artifacts)
            ),
            logs=Logs.from_json(obj.get("logs"), f"{path}.logs"),
            error=ExecutionError.from_json(obj.get("error"), f"{path}.error"),
            execution_count=_opt_int(obj, "execution_count"),
            output_order=_output_order(obj.get("output_order")),
        )

    @property
    def main_result(self) -> Result | None:
        """The value of the cell's last expression (its ``Out[n]``), if any."""
        return next((r for r in self.results if r.is_main_result), None)


@dataclass(frozen=True, slots=True)
class Run:
    """An asynchronous code run and, once it has any, its execution."""

    id: str
    status: str
    #: The sandbox (1.x: machine) the run belongs to; read from either field.
    sandbox_id: str | None = None
    context_id: str | None = None
    timeout_secs: int | None = None
    created_at: str | None = None
    expires_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    cancel_requested_at: str | None = None
    execution: Execution = field(default_factory=Execution)
    failure_reason: str | None = None
    #: Why it ended, as a code of `sandbox_magic.wire` (``timed_out``, ...), when sent.
    failure_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    _KNOWN = frozenset(
        {
            "id",
            "status",
            "sandbox_id",
            "machine_id",
            "context_id",
            "timeout_secs",
            "created_at",
            "expires_at",
            "started_at",
            "completed_at",
            "cancel_requested_at",
            "execution",
            "failure_reason",
            "failure_code",
        }
    )

    @classmethod
    def from_json(cls, value: Any, path: str = "run") -> Run:
        obj = _require_object(value, path)
        return cls(
            id=_require_str(obj, "id", path),
            status=_require_str(obj, "status", path),
            sandbox_id=_opt_str(obj, "sandbox_id") or _opt_str(obj, "machine_id"),
            context_id=_opt_str(obj, "context_id"),
            timeout_secs=_opt_int(obj, "timeout_secs"),
            created_at=_opt_str(obj, "created_at"),
            expires_at=_opt_str(obj, "expires_at"),
            started_at=_opt_str(obj, "started_at"),
            completed_at=_opt_str(obj, "completed_at"),
            cancel_requested_at=_opt_str(obj, "cancel_requested_at"),
            execution=Execution.from_json(obj.get("execution"), f"{path}.execution"),
            failure_reason=_opt_str(obj, "failure_reason"),
            failure_code=_opt_str(obj, "failure_code"),
            extra=_extra(obj, cls._KNOWN),
        )

    @property
    def is_terminal(self) -> bool:
        """True once the run has ended (succeeded, failed or cancelled)."""
        return self.status in TERMINAL_STATUSES

    @property
    def duration_seconds(self) -> float | None:
        """Server-side time from creation to completion, when both are known."""
        start, end = parse_timestamp(self.created_at), parse_timestamp(self.completed_at)
        if start is None or end is None:
            return None
        return (end - start).total_seconds()


@dataclass(frozen=True, slots=True)
class Page(Generic[_T]):
    """One page of a listing, and the cursor of the next page (None on the last)."""

    items: tuple[_T, ...]
    next_cursor: str | None = None
