"""The kernel-side entry points: what the generated snippets call in the sandbox."""

from __future__ import annotations

import os
import sys
from typing import Any

from sandbox_magic.transfer._portable.base import (
    ENTRY_NAME,
    MIME_TYPE,
    PROTOCOL,
    PROTOCOL_VERSION,
    STORE_NAME,
    CodecError,
    _module,
    capabilities,
    human_size,
    sha256_hex,
    type_name,
)
from sandbox_magic.transfer._portable.codecs import decode, encode, pack_chunk, unpack_chunk

# -- sandbox-side entry points ---------------------------------------------------------
# Called by the code that `sandbox_magic.transfer.remote` generates, with the user's
# namespace (`globals()` of the kernel) as `ns`.


def _emit(ns: dict[str, Any], marker: dict[str, Any]) -> None:
    """Display `marker` as this run's answer, and drop the run's code from the history."""
    _scrub_history(ns, ENTRY_NAME)
    _speed_up_kernel(ENTRY_NAME)
    marker.setdefault("protocol", PROTOCOL)
    marker.setdefault("version", PROTOCOL_VERSION)
    ipython_display = _module("IPython.display")
    if ipython_display is None:
        raise RuntimeError("sandbox_magic transfers need an IPython kernel in the sandbox")
    summary = f"sandbox_magic transfer: {marker.get('op')} {marker.get('status')}"
    ipython_display.display({MIME_TYPE: marker, "text/plain": summary}, raw=True)


def _store(ns: dict[str, Any]) -> dict[str, Any]:
    store = ns.get(STORE_NAME)
    if not isinstance(store, dict):
        store = ns[STORE_NAME] = {}
    return store


def _drop(ns: dict[str, Any], tid: str) -> None:
    store = _store(ns)
    store.pop(tid, None)
    if not store:
        ns.pop(STORE_NAME, None)


def _speed_up_kernel(token: str) -> None:
    """Let ipykernel skip its pure-Python hash of transfer snippets (best effort).

    ipykernel names every cell after a murmur2 hash of its source, computed in pure
    Python: a few seconds for a 5 MB snippet, most of a push's cost. Snippets (and
    only they: they start with ``def <token>``) get a fixed name instead, so each
    also replaces the previous one in ``linecache`` rather than piling up there.
    """
    try:
        compiler = sys.modules["IPython"].get_ipython().compile
        if getattr(compiler, "_sandbox_magic_names", False):
            return
        original = compiler.get_code_name
        prefix = "def " + token

        def get_code_name(raw_code: str, code: str, number: int) -> str:
            if raw_code.startswith(prefix):
                return "<sandbox_magic transfer>"
            return str(original(raw_code, code, number))

        compiler.get_code_name = get_code_name
        compiler._sandbox_magic_names = True
    except Exception:
        pass


def _scrub_history(ns: dict[str, Any], token: str) -> None:
    """Drop transfer code (with its payload) from IPython's input history, best effort."""
    placeholder = "# sandbox_magic transfer (code removed from history)"
    prefix = "def " + token

    def scrub(text: object) -> bool:
        return isinstance(text, str) and text.startswith(prefix)

    try:
        ipython = sys.modules["IPython"].get_ipython()
        history = ipython.history_manager
    except Exception:
        history = None
    if history is not None:
        for entries in (history.input_hist_parsed, history.input_hist_raw):
            for i in range(max(0, len(entries) - 3), len(entries)):
                if scrub(entries[i]):
                    entries[i] = placeholder
        for attr in ("_i00", "_i", "_ii", "_iii"):
            if scrub(getattr(history, attr, None)):
                setattr(history, attr, placeholder)
        try:
            with history.db_input_cache_lock:
                history.db_input_cache[:] = [
                    (n, placeholder, placeholder) if scrub(raw) else (n, src, raw)
                    for (n, src, raw) in history.db_input_cache
                ]
        except Exception:
            pass
    for key in list(ns):
        if key.startswith("_i") and scrub(ns[key]):
            ns[key] = placeholder
    linecache = sys.modules.get("linecache")
    cache = getattr(linecache, "cache", None)
    if isinstance(cache, dict):
        for filename, entry in list(cache.items()):
            lines = entry[2] if isinstance(entry, tuple) and len(entry) > 2 else None
            if lines and scrub(lines[0]):
                cache.pop(filename, None)


def probe(ns: dict[str, Any], tid: str) -> None:
    """Report this side's capabilities."""
    _emit(ns, {"op": "probe", "status": "ok", "transfer_id": tid, "capabilities": capabilities()})


def _encode_within(
    ns: dict[str, Any], name: str, accept: list[str], max_bytes: int
) -> tuple[str, str, bytes]:
    """``ns[name]`` encoded in the first accepted format this kernel can write, within
    ``max_bytes``: ``(format, kind, payload)``; `CodecError` otherwise."""
    if name not in ns:
        raise CodecError(f"{name!r} is not defined in the sandbox")
    formats = [f for f in accept if f in capabilities()["formats"]]
    fmt, kind, data = encode(ns[name], name, formats)
    if len(data) > max_bytes:
        raise CodecError(
            f"{name} is {human_size(len(data))} once encoded as {fmt}, over the "
            f"limit of {human_size(max_bytes)} (max_bytes)"
        )
    return fmt, kind, data


def pull_begin(
    ns: dict[str, Any],
    tid: str,
    name: str,
    accept: list[str],
    chunk_bytes: int,
    max_bytes: int,
    compress: bool,
) -> None:
    """Encode ``ns[name]``, keep the payload for the next runs, and emit chunk 0."""
    marker: dict[str, Any] = {"op": "pull", "transfer_id": tid, "name": name}
    try:
        fmt, kind, data = _encode_within(ns, name, accept, max_bytes)
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    _store(ns)[tid] = {
        "data": data,
        "chunk_bytes": chunk_bytes,
        "total_chunks": max(1, -(-len(data) // chunk_bytes)),
        "format": fmt,
        "kind": kind,
        "type": type_name(ns[name]),
        "sha256": sha256_hex(data),
        "name": name,
        "compress": compress,
    }
    pull_chunk(ns, tid, 0)


def pull_chunk(ns: dict[str, Any], tid: str, index: int) -> None:
    """Emit chunk `index` of a pull; the last one releases the payload."""
    entry = _store(ns).get(tid)
    marker: dict[str, Any] = {"op": "pull", "transfer_id": tid}
    if entry is None:
        marker.update(status="error", error="the transfer expired in the sandbox (restarted?)")
        _emit(ns, marker)
        return
    size, total = entry["chunk_bytes"], entry["total_chunks"]
    piece = entry["data"][index * size : (index + 1) * size]
    text, compression = pack_chunk(piece, entry["compress"])
    marker.update(
        status="ok",
        name=entry["name"],
        format=entry["format"],
        kind=entry["kind"],
        type=entry["type"],
        encoding="base64",
        compression=compression,
        chunk=index,
        total_chunks=total,
        size=len(entry["data"]),
        sha256=entry["sha256"],
        data=text,
    )
    if index >= total - 1:
        _drop(ns, tid)
    _emit(ns, marker)


def push_chunk(
    ns: dict[str, Any], tid: str, index: int, text: str, compression: str, size: int
) -> None:
    """Append chunk `index` (base64, maybe compressed, `size` bytes raw) to a push's buffer."""
    store = _store(ns)
    entry = store.setdefault(tid, {"buffer": bytearray(), "next": 0})
    marker: dict[str, Any] = {"op": "push-chunk", "transfer_id": tid, "chunk": index}
    try:
        if entry["next"] != index:
            raise CodecError("push chunks arrived out of order")
        entry["buffer"].extend(unpack_chunk(text, compression, size))
        entry["next"] = index + 1
        marker.update(status="ok", received=len(entry["buffer"]))
    except CodecError as exc:
        _drop(ns, tid)
        marker.update(status="error", error=str(exc))
    _emit(ns, marker)


def push_finish(
    ns: dict[str, Any],
    tid: str,
    name: str,
    fmt: str,
    kind: str,
    size: int,
    digest: str,
    total_chunks: int,
) -> None:
    """Check the assembled payload, decode it and bind it to `name`."""
    entry = _store(ns).get(tid)
    _drop(ns, tid)
    marker: dict[str, Any] = {"op": "push", "transfer_id": tid, "name": name}
    try:
        if entry is None or entry["next"] != total_chunks:
            raise CodecError("the pushed chunks are incomplete (was the sandbox restarted?)")
        data = bytes(entry["buffer"])
        entry["buffer"] = bytearray()
        if len(data) != size or sha256_hex(data) != digest:
            raise CodecError("the pushed payload arrived damaged (size or sha256 mismatch)")
        value = decode(fmt, kind, data)
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    _bind(ns, marker, name, kind, value, size, digest)


def discard(ns: dict[str, Any], tid: str) -> None:
    """Forget a transfer's buffer (after a failure on the client side)."""
    _drop(ns, tid)
    _emit(ns, {"op": "discard", "status": "ok", "transfer_id": tid})


def _bind(
    ns: dict[str, Any],
    marker: dict[str, Any],
    name: str,
    kind: str,
    value: object,
    size: int,
    digest: str,
) -> None:
    """Bind a checked, decoded push to `name` and confirm it."""
    ns[name] = value
    shape = getattr(value, "shape", None)
    marker.update(
        status="ok",
        kind=kind,
        type=type_name(value),
        shape=list(shape) if isinstance(shape, tuple) else None,
        size=size,
        sha256=digest,
    )
    _emit(ns, marker)


# -- transfers through files (servers with raw file endpoints) -------------------------


def _remove(path: str) -> bool:
    try:
        os.remove(path)
    except OSError:
        return False
    return True


def push_file(
    ns: dict[str, Any],
    tid: str,
    path: str,
    name: str,
    fmt: str,
    kind: str,
    size: int,
    digest: str,
) -> None:
    """Read a pushed payload from `path` (then delete it), check, decode and bind it."""
    marker: dict[str, Any] = {"op": "push", "transfer_id": tid, "name": name}
    try:
        try:
            with open(path, "rb") as handle:
                data = handle.read(size + 1)
        except OSError as exc:
            raise CodecError("the pushed file cannot be read (" + str(exc.strerror) + ")") from None
        finally:
            _remove(path)
        if len(data) != size or sha256_hex(data) != digest:
            raise CodecError("the pushed payload arrived damaged (size or sha256 mismatch)")
        value = decode(fmt, kind, data)
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    _bind(ns, marker, name, kind, value, size, digest)


def pull_file(
    ns: dict[str, Any], tid: str, name: str, accept: list[str], max_bytes: int, path: str
) -> None:
    """Encode ``ns[name]`` into a new private file at `path`; announce its size and sha256."""
    marker: dict[str, Any] = {"op": "pull-file", "transfer_id": tid, "name": name}
    try:
        fmt, kind, data = _encode_within(ns, name, accept, max_bytes)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            with os.fdopen(os.open(path, flags, 0o600), "wb") as handle:
                handle.write(data)
        except OSError as exc:
            _remove(path)
            raise CodecError("cannot write the transfer file (" + str(exc.strerror) + ")") from None
    except CodecError as exc:
        marker.update(status="error", error=str(exc))
        _emit(ns, marker)
        return
    marker.update(
        status="ok",
        format=fmt,
        kind=kind,
        type=type_name(ns[name]),
        size=len(data),
        sha256=sha256_hex(data),
    )
    _emit(ns, marker)


def remove_file(ns: dict[str, Any], tid: str, path: str) -> None:
    """Delete a transfer's file (after a pull, or a failure on the client side)."""
    _remove(path)
    _emit(ns, {"op": "discard", "status": "ok", "transfer_id": tid})
