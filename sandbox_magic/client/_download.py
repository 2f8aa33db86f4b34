"""Download a run's artifacts to a local folder, verifying each file's sha256.

A file is written only after its bytes match the sha256 the server announced; a
mismatch leaves nothing behind and raises `ArtifactIntegrityError`. Names coming
from the server are reduced to a plain file name, so nothing is written outside the
chosen folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._errors import SandboxError
from sandbox_magic.client._models import Artifact

__all__ = ["ArtifactIntegrityError", "SavedArtifact", "safe_file_name", "save_artifacts"]


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


async def save_artifacts(
    client: AsyncSandboxClient,
    sandbox_id: str,
    artifacts: Sequence[Artifact],
    folder: Path,
    *,
    max_bytes: int | None = None,
) -> list[SavedArtifact]:
    """Download each artifact into ``folder``; raise on the first sha256 mismatch."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    saved: list[SavedArtifact] = []
    for artifact in artifacts:
        data = await client.download_artifact(sandbox_id, artifact.id, max_bytes=max_bytes)
        digest = hashlib.sha256(data).hexdigest()
        expected = (artifact.sha256 or "").lower()
        if expected and digest != expected:
            raise ArtifactIntegrityError(
                f"Artifact {artifact.name or artifact.id} is corrupt: its sha256 is {digest}, "
                f"the server announced {expected}. Nothing was saved for it."
            )
        target = folder / safe_file_name(artifact)
        await asyncio.to_thread(_write_atomically, target, data)
        saved.append(SavedArtifact(artifact, target, len(data), digest, bool(expected)))
    return saved


def _write_atomically(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
