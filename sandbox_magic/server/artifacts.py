"""Files a run produced: snapshot a directory before and after, keep what changed.

Only regular files reached without following any symlink count, so a link pointing
outside the sandbox can never become an artifact. Artifact ids are opaque random
tokens (never paths); the bytes are copied into the state dir when the run ends, so
an artifact keeps the content its run produced. `safe_join` is the one way a
client-given relative path (a context's ``cwd``) becomes a real path: absolute
paths, ``..`` and symlinks leading out of the root are refused.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final

from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.util import new_id, now_iso

__all__ = [
    "ARTIFACT_ID",
    "Snapshot",
    "changed_files",
    "classify",
    "collect",
    "describe",
    "safe_join",
    "snapshot",
]

#: The shape of every artifact id; anything else is refused before any lookup.
ARTIFACT_ID: Final = re.compile(r"^art_[0-9a-f]{16}$")

#: Directories whose contents are bookkeeping, never a run's output.
_SKIPPED_DIRS: Final = frozenset(
    {
        "__pycache__",
        ".ipynb_checkpoints",
        ".git",
        ".venv",
        "node_modules",
        ".cache",
        ".nullspace",
        ".sandbox-magic-transfer",  # data on its way in or out (--push / --pull)
    }
)
_MAX_FILES: Final = 20_000

Snapshot = dict[str, tuple[int, int, int]]


def snapshot(root: Path) -> Snapshot:
    """``relative path -> (size, mtime_ns, inode)`` of regular files under ``root``."""
    found: Snapshot = {}
    stack = [root]
    while stack and len(found) < _MAX_FILES:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in _SKIPPED_DIRS:
                        stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    relative = Path(entry.path).relative_to(root).as_posix()
                    found[relative] = (info.st_size, info.st_mtime_ns, info.st_ino)
            except OSError:
                continue
    return found


def changed_files(before: Snapshot, after: Snapshot) -> list[str]:
    """Paths new in ``after`` or different from ``before``, in a stable order."""
    return sorted(name for name, meta in after.items() if before.get(name) != meta)


def classify(name: str) -> tuple[str, str]:
    """``(mime_type, kind)`` of a file name; kind is file, image, html or document."""
    mime, _ = mimetypes.guess_type(name)
    mime = mime or "application/octet-stream"
    if mime.startswith("image/"):
        return mime, "image"
    if mime in ("text/html", "application/xhtml+xml"):
        return mime, "html"
    document_types = ("application/pdf", "application/msword", "application/vnd.", "text/markdown")
    if mime.startswith(document_types):
        return mime, "document"
    return mime, "file"


def is_previewable(mime: str) -> bool:
    """Whether the preview route serves these bytes inline."""
    return mime.startswith(("image/", "text/")) or mime in ("application/pdf", "application/json")


def safe_join(root: Path, relative: str) -> Path:
    """``root / relative``, refusing anything that could lead outside ``root``."""
    candidate = PurePosixPath(relative)
    if candidate.is_absolute() or "\\" in relative or "\x00" in relative:
        raise ApiError.bad_request(f"Path {relative!r} must be relative to the sandbox.")
    if any(part == ".." for part in candidate.parts):
        raise ApiError.bad_request(f"Path {relative!r} must not contain '..'.")
    real_root = root.resolve()
    joined = real_root.joinpath(*candidate.parts)
    if not joined.resolve().is_relative_to(real_root):
        raise ApiError.bad_request(f"Path {relative!r} leads outside the sandbox.")
    return joined


@dataclass(frozen=True, slots=True)
class _Copied:
    size: int
    sha256: str


def _copy_hashing(source: Path, target: Path, limit: int) -> _Copied | None:
    """Copy without following symlinks; None when the file vanished or is too big."""
    digest = hashlib.sha256()
    size = 0
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(source, flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(1 << 20):
            size += len(chunk)
            if size > limit:
                writer.close()
                target.unlink(missing_ok=True)
                return None
            digest.update(chunk)
            writer.write(chunk)
    return _Copied(size, digest.hexdigest())


def collect(
    *,
    cwd: Path,
    names: list[str],
    store_dir: Path,
    sandbox_id: str,
    context_id: str,
    execution_count: int | None,
    max_bytes: int,
) -> list[dict[str, Any]]:
    """Copy changed files into the store and describe each as a contract Artifact.

    Blocking (file I/O): call it in a worker thread.
    """
    artifacts: list[dict[str, Any]] = []
    real_cwd = cwd.resolve()
    for name in names:
        source = real_cwd / name
        if not source.resolve().is_relative_to(real_cwd):
            continue
        artifact_id = new_id("art")
        copied = _copy_hashing(source, store_dir / artifact_id, max_bytes)
        if copied is None:
            continue
        mime, kind = classify(name)
        artifacts.append(
            describe(
                artifact_id,
                sandbox_id=sandbox_id,
                context_id=context_id,
                execution_count=execution_count,
                name=name,
                mime=mime,
                kind=kind,
                size=copied.size,
                sha256=copied.sha256,
                metadata={"path": name},
            )
        )
    return artifacts


def describe(
    artifact_id: str,
    *,
    sandbox_id: str,
    context_id: str,
    execution_count: int | None,
    name: str,
    mime: str,
    kind: str,
    size: int,
    sha256: str,
    metadata: dict[str, Any],
) -> dict[str, Any]:
    """The contract Artifact record of stored bytes."""
    base = f"/v1/sandboxes/{sandbox_id}/code/artifacts/{artifact_id}"
    return {
        "id": artifact_id,
        "context_id": context_id,
        "kind": kind,
        "mime_type": mime,
        "name": name,
        "size_bytes": size,
        "sha256": sha256,
        "created_at": now_iso(),
        "execution_count": execution_count,
        "expires_at": None,
        "preview_url": f"{base}/preview" if is_previewable(mime) else None,
        "download_url": f"{base}/download",
        "metadata": metadata,
    }


def remove_tree(path: Path) -> None:
    """Delete a directory tree, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)
