"""Moving values between the notebook and the sandbox: plans, assembly and async helpers.

The only channel is running code in the sandbox and reading the run's results:

- **push**: the value is encoded here (`codec`), cut into chunks, and each chunk is
  embedded as a base64 literal in one submitted snippet that appends it to a buffer in
  the sandbox; the last snippet checks size and sha256, decodes with the same safe
  readers, binds the name and frees the buffer. Each run answers with a marker.
- **pull**: a first snippet encodes the remote variable (Arrow when both sides have
  pyarrow, else a numpy-based fallback, ``.npy`` or JSON), keeps the payload in the
  sandbox and displays chunk 0 as a result of MIME type `MIME_TYPE`; further snippets
  display the next chunks. The client checks every marker, the total size against
  ``max_bytes`` and the sha256, then decodes safely.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sandbox_magic.client import RemoteExecutionError
from sandbox_magic.transfer import _portable, remote
from sandbox_magic.transfer.codec import (
    DEFAULT_MAX_BYTES,
    check_name,
    classify,
    decode_value,
    encode_value,
    human_size,
    local_formats,
)
from sandbox_magic.transfer.errors import TransferError

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "MAX_CHUNK_BYTES",
    "MIME_TYPE",
    "Bundle",
    "PullAssembler",
    "PushPlan",
    "PushReceipt",
    "RemoteCapabilities",
    "RunCode",
    "encode_for_push",
    "parse_probe",
    "plan_push",
    "probe",
    "probe_code",
    "pull",
    "push",
]

MIME_TYPE: Final = _portable.MIME_TYPE
DEFAULT_CHUNK_BYTES: Final = 4 * 1024 * 1024
#: Base64 grows a chunk by 4/3: 10 MiB of payload stays under a 16 MiB request body.
MAX_CHUNK_BYTES: Final = 10 * 1024 * 1024

#: One result of a run: a MIME bundle (``Result.mime_bundle()`` of the wire models).
Bundle = Mapping[str, Any]
#: Submits code to the sandbox context, waits for the run, returns its result bundles;
#: raises `RemoteExecutionError` if the code raised.
RunCode = Callable[[str], Awaitable[Sequence[Bundle]]]

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _new_transfer_id() -> str:
    return secrets.token_hex(8)


def _check_limits(max_bytes: int, chunk_bytes: int) -> None:
    if type(max_bytes) is not int or max_bytes <= 0:
        raise TransferError(f"max_bytes must be a positive number of bytes, not {max_bytes!r}.")
    if type(chunk_bytes) is not int or not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise TransferError(
            f"chunk_bytes must be between 1 and {MAX_CHUNK_BYTES} "
            f"({human_size(MAX_CHUNK_BYTES)}), not {chunk_bytes!r}."
        )


def _markers(bundles: Sequence[Bundle], transfer_id: str, op: str) -> list[dict[str, Any]]:
    """The transfer markers of one operation in a run's results."""
    found: list[dict[str, Any]] = []
    for bundle in bundles:
        if not isinstance(bundle, Mapping):
            bundle = getattr(bundle, "mime_bundle", dict)()
        raw = bundle.get(MIME_TYPE)
        if raw is None:
            continue
        if isinstance(raw, str | bytes):
            try:
                raw = json.loads(raw)
            except ValueError:
                continue  # not ours: ours are JSON objects
        if isinstance(raw, dict) and (
            raw.get("protocol") == _portable.PROTOCOL
            and raw.get("transfer_id") == transfer_id
            and raw.get("op") == op
        ):
            found.append(raw)
    return found


def _one_marker(bundles: Sequence[Bundle], transfer_id: str, op: str, what: str) -> dict[str, Any]:
    found = _markers(bundles, transfer_id, op)
    if len(found) != 1:
        problem = "no" if not found else f"{len(found)}"
        raise TransferError(
            f"{what}: the sandbox gave {problem} answer(s) to the transfer step "
            "(is it an IPython kernel? was the output cleared?)."
        )
    marker = found[0]
    if marker.get("version") != _portable.PROTOCOL_VERSION:
        raise TransferError(
            f"{what}: the sandbox speaks transfer protocol version {marker.get('version')!r}, "
            f"this client version {_portable.PROTOCOL_VERSION}."
        )
    if marker.get("status") != "ok":
        error = marker.get("error")
        detail = error if isinstance(error, str) else "no reason given"
        raise TransferError(f"{what}: the sandbox refused: {detail[:500]}")
    return marker


# -- probe -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteCapabilities:
    """The sandbox's Python and optional libraries, and the formats it can read and write."""

    python: str | None
    numpy: str | None
    pandas: str | None
    pyarrow: str | None
    formats: tuple[str, ...]


def probe_code() -> tuple[str, str]:
    """``(transfer_id, code)`` of a run that reports the sandbox's capabilities."""
    transfer_id = _new_transfer_id()
    return transfer_id, remote.probe_code(transfer_id)


def parse_probe(bundles: Sequence[Bundle], transfer_id: str) -> RemoteCapabilities:
    """Read the answer of `probe_code`'s run."""
    marker = _one_marker(bundles, transfer_id, "probe", "Cannot inspect the sandbox")
    caps = marker.get("capabilities")
    if not isinstance(caps, dict):
        raise TransferError("Cannot inspect the sandbox: malformed capabilities.")

    def text(key: str) -> str | None:
        value = caps.get(key)
        return value if isinstance(value, str) else None

    formats = caps.get("formats")
    known = tuple(f for f in _portable.FORMATS if isinstance(formats, list) and f in formats)
    return RemoteCapabilities(
        python=text("python"),
        numpy=text("numpy"),
        pandas=text("pandas"),
        pyarrow=text("pyarrow"),
        formats=known,
    )


async def probe(run_code: RunCode) -> RemoteCapabilities:
    """Ask the sandbox which libraries and formats it has (one run)."""
    transfer_id, code = probe_code()
    return parse_probe(await _run(run_code, code, "Cannot inspect the sandbox"), transfer_id)


# -- push ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushReceipt:
    """What the sandbox confirmed after binding a pushed value."""

    name: str
    format: str
    kind: str
    size: int
    chunks: int
    remote_type: str | None
    shape: tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class PushPlan:
    """How to push one value: the snippets, made one at a time, and checks of the answers."""

    name: str
    transfer_id: str
    format: str
    kind: str
    size: int
    sha256: str
    chunk_bytes: int
    compress: bool
    data: bytes = field(repr=False)

    @property
    def total_chunks(self) -> int:
        """How many runs the push takes."""
        return max(1, -(-self.size // self.chunk_bytes))

    def code(self, step: int) -> str:
        """The snippet of run `step` (0-based); the last one also decodes and binds."""
        if not 0 <= step < self.total_chunks:
            raise IndexError(step)
        piece = self.data[step * self.chunk_bytes : (step + 1) * self.chunk_bytes]
        text, compression = _portable.pack_chunk(piece, self.compress)
        if step < self.total_chunks - 1:
            return remote.push_chunk_code(self.transfer_id, step, text, compression, len(piece))
        return remote.push_last_chunk_code(
            self.transfer_id,
            step,
            text,
            compression,
            len(piece),
            name=self.name,
            fmt=self.format,
            kind=self.kind,
            size=self.size,
            sha256=self.sha256,
        )

    def codes(self) -> Iterator[str]:
        """All snippets in order, made lazily (each holds up to `chunk_bytes` of payload)."""
        return (self.code(step) for step in range(self.total_chunks))

    def check(self, step: int, bundles: Sequence[Bundle]) -> PushReceipt | None:
        """Check the answer of run `step`; the last step returns the receipt."""
        what = f"Cannot push {self.name!r}"
        chunk = _one_marker(bundles, self.transfer_id, "push-chunk", what)
        expected = min(self.size, (step + 1) * self.chunk_bytes)
        if chunk.get("chunk") != step or chunk.get("received") != expected:
            raise TransferError(f"{what}: the sandbox lost track of the chunks.")
        if step < self.total_chunks - 1:
            return None
        done = _one_marker(bundles, self.transfer_id, "push", what)
        if done.get("sha256") != self.sha256 or done.get("size") != self.size:
            raise TransferError(f"{what}: the sandbox confirmed a different payload.")
        shape = done.get("shape")
        remote_type = done.get("type")
        return PushReceipt(
            name=self.name,
            format=self.format,
            kind=self.kind,
            size=self.size,
            chunks=self.total_chunks,
            remote_type=remote_type if isinstance(remote_type, str) else None,
            shape=(
                tuple(shape)
                if isinstance(shape, list) and all(type(n) is int for n in shape)
                else None
            ),
        )

    def discard_code(self) -> str:
        """Code that frees the sandbox's buffer if the push is abandoned midway."""
        return remote.discard_code(self.transfer_id)


def plan_push(
    name: str,
    value: object,
    *,
    remote_formats: Sequence[str] | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    compress: bool = True,
) -> PushPlan:
    """Encode `value` and plan the snippets that bind it to `name` in the sandbox.

    `remote_formats` (from `probe`) restricts the formats to those the sandbox reads;
    without it, the best local format is used and the sandbox reports if it lacks a
    library. With `compress`, each chunk that zlib shrinks by 10 % travels compressed.
    Raises `TransferError` for bad names, unsupported types or sizes.
    """
    _check_limits(max_bytes, chunk_bytes)
    name = check_name(name)
    formats = local_formats()
    if remote_formats is not None:
        formats = tuple(f for f in formats if f in remote_formats)
    encoded = encode_value(value, name=name, formats=formats, max_bytes=max_bytes)
    return PushPlan(
        name=name,
        transfer_id=_new_transfer_id(),
        format=encoded.format,
        kind=encoded.kind,
        size=len(encoded.data),
        sha256=encoded.sha256,
        chunk_bytes=chunk_bytes,
        compress=compress,
        data=encoded.data,
    )


def encode_for_push(
    name: str,
    value: object,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> list[str]:
    """The code strings to run in order; the last binds `name` and frees the buffer."""
    return list(plan_push(name, value, max_bytes=max_bytes, chunk_bytes=chunk_bytes).codes())


async def push(
    run_code: RunCode,
    name: str,
    value: object,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    compress: bool = True,
    remote_capabilities: RemoteCapabilities | None = None,
) -> PushReceipt:
    """Bind `value` to `name` in the sandbox.

    Unless `remote_capabilities` is given, the sandbox is first probed (one small run)
    for DataFrames and Series, so that Arrow is used only where it can be read, and
    for payloads of several chunks, which the probe's run makes cheaper to submit.
    """
    kind = classify(value, check_name(name))
    caps = remote_capabilities
    if caps is None and kind in (_portable.KIND_DATAFRAME, _portable.KIND_SERIES):
        caps = await probe(run_code)
    plan = plan_push(
        name,
        value,
        remote_formats=caps.formats if caps is not None else None,
        max_bytes=max_bytes,
        chunk_bytes=chunk_bytes,
        compress=compress,
    )
    if caps is None and plan.total_chunks > 1:
        await probe(run_code)
    what = f"Cannot push {name!r}"
    try:
        for step in range(plan.total_chunks):
            receipt = plan.check(step, await _run(run_code, plan.code(step), what))
            if receipt is not None:
                return receipt
    except Exception:
        await _discard(run_code, plan.discard_code())
        raise
    raise AssertionError("unreachable: the last step returns a receipt")


# -- pull ------------------------------------------------------------------------------


class PullAssembler:
    """Drives one pull: gives the code of each run and checks and joins the answers.

    ```
    assembler = PullAssembler("df")
    code = assembler.code
    while code is not None:
        code = assembler.feed(await run_code(code))
    df = assembler.value()
    ```
    """

    def __init__(
        self,
        name: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        formats: Sequence[str] | None = None,
        compress: bool = True,
    ) -> None:
        _check_limits(max_bytes, chunk_bytes)
        self.name = check_name(name)
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.accept = tuple(formats) if formats is not None else local_formats()
        self.transfer_id = _new_transfer_id()
        #: The code of the next run, or None when the value is complete.
        self.code: str | None = remote.pull_begin_code(
            self.transfer_id, self.name, list(self.accept), chunk_bytes, max_bytes, compress
        )
        self._buffer = bytearray()
        self._header: dict[str, Any] | None = None
        self._next = 0
        self._value: object = None
        self._done = False

    @property
    def done(self) -> bool:
        """True once the whole value has arrived and decoded."""
        return self._done

    @property
    def remote_holds_buffer(self) -> bool:
        """True while the sandbox keeps the payload (a pull abandoned now should discard)."""
        return not self._done and (self._header is None or self._next < self.total_chunks)

    @property
    def total_chunks(self) -> int:
        """How many runs the pull takes (known after the first)."""
        return int(self._header["total_chunks"]) if self._header else 1

    @property
    def format(self) -> str | None:
        """The payload's format, once the first chunk has arrived."""
        return str(self._header["format"]) if self._header else None

    def _fail(self, detail: str) -> TransferError:
        return TransferError(f"Cannot pull {self.name!r}: {detail}")

    def feed(self, bundles: Sequence[Bundle]) -> str | None:
        """Consume the results of the last run; return the next code, or None when done."""
        if self._done or self.code is None:
            raise self._fail("the transfer is already complete.")
        marker = _one_marker(bundles, self.transfer_id, "pull", f"Cannot pull {self.name!r}")
        if self._header is None:
            self._header = self._check_header(marker)
        else:
            for key in ("format", "kind", "size", "sha256", "total_chunks"):
                if marker.get(key) != self._header[key]:
                    raise self._fail(f"chunk {self._next} disagrees with the first on {key}.")
        if marker.get("chunk") != self._next or marker.get("encoding") != "base64":
            raise self._fail(f"expected chunk {self._next}, got {marker.get('chunk')!r}.")
        text = marker.get("data")
        size = self._header["size"]
        expected = min(self.chunk_bytes, size - self._next * self.chunk_bytes)
        try:
            if not isinstance(text, str):
                raise _portable.CodecError("a chunk carries no data")
            piece = _portable.unpack_chunk(text, marker.get("compression", "none"), expected)
        except _portable.CodecError as exc:
            raise self._fail(f"chunk {self._next}: {exc}.") from None
        self._buffer.extend(piece)
        self._next += 1
        if self._next < self.total_chunks:
            self.code = remote.pull_chunk_code(self.transfer_id, self._next)
            return self.code
        self.code = None
        data = bytes(self._buffer)
        self._buffer = bytearray()
        if _portable.sha256_hex(data) != self._header["sha256"]:
            raise self._fail("the payload's sha256 does not match; it was damaged or altered.")
        self._value = decode_value(
            self._header["format"],
            self._header["kind"],
            data,
            max_bytes=self.max_bytes,
            label=self.name,
        )
        self._done = True
        return None

    def _check_header(self, marker: dict[str, Any]) -> dict[str, Any]:
        fmt, kind = marker.get("format"), marker.get("kind")
        size, total, digest = marker.get("size"), marker.get("total_chunks"), marker.get("sha256")
        if fmt not in self.accept:
            raise self._fail(
                f"the sandbox sent format {fmt!r:.40}, which is refused; "
                f"accepted: {', '.join(self.accept)}."
            )
        if type(size) is not int or size < 0:
            raise self._fail("the sandbox sent no valid size.")
        if size > self.max_bytes:
            raise self._fail(
                f"it is {human_size(size)} encoded, over the limit of "
                f"{human_size(self.max_bytes)} (max_bytes)."
            )
        if total != max(1, -(-size // self.chunk_bytes)):
            raise self._fail("the sandbox announced an inconsistent number of chunks.")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise self._fail("the sandbox sent no valid sha256.")
        return {"format": fmt, "kind": kind, "size": size, "sha256": digest, "total_chunks": total}

    def value(self) -> object:
        """The decoded value (only once `done`)."""
        if not self._done:
            raise self._fail("the transfer is not complete yet.")
        return self._value

    def discard_code(self) -> str:
        """Code that frees the sandbox's copy if the pull is abandoned midway."""
        return remote.discard_code(self.transfer_id)


async def pull(
    run_code: RunCode,
    name: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    compress: bool = True,
) -> object:
    """Fetch the sandbox variable `name`, checked and safely decoded."""
    assembler = PullAssembler(name, max_bytes=max_bytes, chunk_bytes=chunk_bytes, compress=compress)
    what = f"Cannot pull {name!r}"
    code = assembler.code
    try:
        while code is not None:
            code = assembler.feed(await _run(run_code, code, what))
    except Exception:
        if assembler.remote_holds_buffer:
            await _discard(run_code, assembler.discard_code())
        raise
    return assembler.value()


# -- running ---------------------------------------------------------------------------


async def _run(run_code: RunCode, code: str, what: str) -> Sequence[Bundle]:
    try:
        return await run_code(code)
    except RemoteExecutionError as exc:
        raise TransferError(
            f"{what}: the transfer code failed in the sandbox: {exc.name}: {exc.value}"
        ) from exc


async def _discard(run_code: RunCode, code: str) -> None:
    """Best effort: free the sandbox's buffer; a failure here must not hide the first one."""
    with contextlib.suppress(Exception):
        await run_code(code)
