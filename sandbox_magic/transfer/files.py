"""``--push`` / ``--pull`` through a server's raw file endpoints, when it has them.

The payload travels as bytes (``PUT``/``GET .../file?path=``) instead of base64 inside
code text, so neither side parses megabytes of Python. Everything else stays as in
`sandbox_magic.transfer.exchange`: the same codec and formats (no pickle), the same
size limit, and the sha256 checked on the receiving side:

- **push**: encode here, ``PUT`` the payload to a private transfer file, then one run
  reads it (deleting it), checks size and sha256, decodes safely and binds the name;
- **pull**: one run encodes the remote value into a new transfer file and announces
  format, size and sha256; the client refuses what it would refuse from chunks
  (format not accepted, over ``max_bytes``), ``GET``s at most the announced size,
  checks the sha256 and decodes safely; a last run deletes the file.

Transfer files live in `TRANSFER_DIR` under the context's working directory, a
folder the local server never reports as artifacts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox_magic.transfer import _portable, remote
from sandbox_magic.transfer.codec import (
    DEFAULT_MAX_BYTES,
    check_name,
    classify,
    decode_value,
    human_size,
    local_formats,
)
from sandbox_magic.transfer.errors import TransferError
from sandbox_magic.transfer.exchange import (
    _SHA256,
    PushReceipt,
    RemoteCapabilities,
    RunCode,
    _discard,
    _new_transfer_id,
    _one_marker,
    _run,
    plan_push,
    probe,
)

__all__ = ["TRANSFER_DIR", "FileChannel", "pull_via_file", "push_via_file", "transfer_path"]

#: Folder (under the context's cwd) holding transfer files while they travel.
TRANSFER_DIR = ".sandbox-magic-transfer"


@dataclass(frozen=True)
class FileChannel:
    """The file endpoints of one sandbox, and the directory its code runs in."""

    #: ``put(path, data)``: write a file in the sandbox.
    put: Callable[[str, bytes], Awaitable[None]]
    #: ``get(path, max_bytes)``: read a file of the sandbox, refusing more than that.
    get: Callable[[str, int], Awaitable[bytes]]
    #: The context's working directory as its code sees it (absolute).
    cwd: str


def transfer_path(cwd: str, transfer_id: str) -> str:
    """Where the payload of transfer ``transfer_id`` travels."""
    return f"{cwd.rstrip('/')}/{TRANSFER_DIR}/{transfer_id}.bin"


async def push_via_file(
    run_code: RunCode,
    channel: FileChannel,
    name: str,
    value: object,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    remote_capabilities: RemoteCapabilities | None = None,
) -> PushReceipt:
    """Bind `value` to `name` in the sandbox, the payload sent as one raw file."""
    kind = classify(value, check_name(name))
    caps = remote_capabilities
    if caps is None and kind in (_portable.KIND_DATAFRAME, _portable.KIND_SERIES):
        caps = await probe(run_code)  # Arrow only where the sandbox can read it
    plan = plan_push(
        name, value, remote_formats=caps.formats if caps is not None else None, max_bytes=max_bytes
    )
    what = f"Cannot push {name!r}"
    path = transfer_path(channel.cwd, plan.transfer_id)
    code = remote.push_file_code(
        plan.transfer_id,
        path,
        name=plan.name,
        fmt=plan.format,
        kind=plan.kind,
        size=plan.size,
        sha256=plan.sha256,
    )
    try:
        await channel.put(path, plan.data)
        done = _one_marker(await _run(run_code, code, what), plan.transfer_id, "push", what)
    except Exception:
        await _discard(run_code, remote.remove_file_code(plan.transfer_id, path))
        raise
    if done.get("sha256") != plan.sha256 or done.get("size") != plan.size:
        raise TransferError(f"{what}: the sandbox confirmed a different payload.")
    shape = done.get("shape")
    remote_type = done.get("type")
    return PushReceipt(
        name=plan.name,
        format=plan.format,
        kind=plan.kind,
        size=plan.size,
        chunks=1,
        remote_type=remote_type if isinstance(remote_type, str) else None,
        shape=(
            tuple(shape) if isinstance(shape, list) and all(type(n) is int for n in shape) else None
        ),
    )


async def pull_via_file(
    run_code: RunCode,
    channel: FileChannel,
    name: str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    formats: Sequence[str] | None = None,
) -> object:
    """Fetch the sandbox variable `name` as one raw file, checked and safely decoded."""
    name = check_name(name)
    accept = tuple(formats) if formats is not None else local_formats()
    transfer_id = _new_transfer_id()
    path = transfer_path(channel.cwd, transfer_id)
    what = f"Cannot pull {name!r}"
    code = remote.pull_file_code(transfer_id, name, list(accept), max_bytes, path)
    try:
        marker = _one_marker(await _run(run_code, code, what), transfer_id, "pull-file", what)
        fmt, kind, size, digest = _check_announcement(marker, accept, max_bytes, what)
        data = await channel.get(path, size)
    finally:
        await _discard(run_code, remote.remove_file_code(transfer_id, path))
    if len(data) != size or _portable.sha256_hex(data) != digest:
        raise TransferError(
            f"{what}: the payload's sha256 does not match; it was damaged or altered."
        )
    return decode_value(fmt, kind, data, max_bytes=max_bytes, label=name)


def _check_announcement(
    marker: dict[str, Any], accept: Sequence[str], max_bytes: int, what: str
) -> tuple[str, str, int, str]:
    fmt, kind = marker.get("format"), marker.get("kind")
    size, digest = marker.get("size"), marker.get("sha256")
    if not isinstance(fmt, str) or fmt not in accept:
        raise TransferError(
            f"{what}: the sandbox sent format {fmt!r:.40}, which is refused; "
            f"accepted: {', '.join(accept)}."
        )
    if not isinstance(kind, str):
        raise TransferError(f"{what}: the sandbox sent no valid kind.")
    if type(size) is not int or size < 0:
        raise TransferError(f"{what}: the sandbox sent no valid size.")
    if size > max_bytes:
        raise TransferError(
            f"{what}: it is {human_size(size)} encoded, over the limit of "
            f"{human_size(max_bytes)} (max_bytes)."
        )
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise TransferError(f"{what}: the sandbox sent no valid sha256.")
    return fmt, kind, size, digest
