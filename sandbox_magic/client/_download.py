"""Download a run's artifacts to a local folder, verifying each file's sha256.

Each file is streamed to a temporary file beside its target, under a size cap, and
moved into place only after its bytes match the sha256 the server announced; a
mismatch leaves nothing behind and raises `ArtifactIntegrityError`. A file the server
gave no hash for is saved unverified (`SavedArtifact.verified` says which). Names
coming from the server are reduced to a plain file name, so nothing is written
outside the chosen folder, and numbered when two would collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._errors import SandboxError
from sandbox_magic.client._models import Artifact

__all__ = [
    "DEFAULT_MAX_DOWNLOAD_BYTES",
    "ArtifactIntegrityError",
    "SavedArtifact",
    "safe_file_name",
    "save_artifacts",
    "unique_file_names",
]


class ArtifactIntegrityError(SandboxError):
    """A downloaded artifact's bytes do not match the sha256 the server announced."""


@dataclass(frozen=True, slots=True)
class SavedArtifact:
    """One artifact written to disk."""

    artifact: Artifact
    path: Path
    size: int
    sha256: str
    verified: bool


def safe_file_name(artifact: Artifact) -> str:
    """A plain file name for an artifact: its base name, never a path."""
    raw = (artifact.name or artifact.id).replace("\\", "/")
    name = PurePosixPath(raw).name.strip()
    if name in ("", ".", "..") or name.startswith("."):
        name = f"artifact-{artifact.id}"
    return name


def unique_file_names(artifacts: Sequence[Artifact]) -> list[str]:
    """`safe_file_name` of each artifact, numbered where two would share a name."""
    taken: set[str] = set()
    names: list[str] = []
    for artifact in artifacts:
        name = safe_file_name(artifact)
        path = PurePosixPath(name)
        number = 1
        while name in taken:
            number += 1
            name = f"{path.stem}-{number}{path.suffix}"
        taken.add(name)
        names.append(name)
    return names


#: Largest artifact `save_artifacts` writes unless told otherwise (1 GiB).
DEFAULT_MAX_DOWNLOAD_BYTES = 1 << 30


async def save_artifacts(
    client: AsyncSandboxClient,
    sandbox_id: str,
    artifacts: Sequence[Artifact],
    folder: Path,
    *,
    max_bytes: int | None = DEFAULT_MAX_DOWNLOAD_BYTES,
) -> list[SavedArtifact]:
    """Stream each artifact to a file in ``folder`` (never whole in memory), at most
    ``max_bytes`` each; raise on the first sha256 mismatch. Two artifacts of the same
    name are saved as ``name``, ``name-2``, ..."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    saved: list[SavedArtifact] = []
    for artifact, name in zip(artifacts, unique_file_names(artifacts), strict=True):
        saved.append(await _save_one(client, sandbox_id, artifact, folder / name, max_bytes))
    return saved


async def _save_one(
    client: AsyncSandboxClient,
    sandbox_id: str,
    artifact: Artifact,
    target: Path,
    max_bytes: int | None,
) -> SavedArtifact:
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as handle:
            size = await client.download_artifact_to(
                sandbox_id, artifact.id, handle, max_bytes=max_bytes
            )
            digest = await asyncio.to_thread(_sha256_of, handle)
        expected = (artifact.sha256 or "").lower()
        if expected and digest != expected:
            raise ArtifactIntegrityError(
                f"Artifact {artifact.name or artifact.id} is corrupt: its sha256 is {digest}, "
                f"the server announced {expected}. Nothing was saved for it."
            )
        await asyncio.to_thread(os.replace, tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)  # quick, and must run even when the task is being cancelled
        raise
    return SavedArtifact(artifact, target, size, digest, bool(expected))


def _sha256_of(handle: BinaryIO) -> str:
    handle.seek(0)
    digest = hashlib.sha256()
    while chunk := handle.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()
