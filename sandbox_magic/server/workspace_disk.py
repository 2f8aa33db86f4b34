"""A filesystem of its own for each confined sandbox's ``/workspace``, sized to its disk.

rlimits cap the size of each file and cgroups do not count disk at all, so under a
server started as root each sandbox's workspace is an ext4 filesystem in a sparse image
file (``<state dir>/disks/<sandbox id>.img``, only as large on the host as what the
sandbox wrote), loop-mounted on the sandbox's workspace folder before any of its
kernels starts. Writing past ``disk_mb`` fails inside the sandbox with "No space left on
device"; nothing else on the host fills up.

The image outlives a server stop (the sandbox keeps its files) and is mounted again on
the next start; deleting the sandbox unmounts and removes it. Mounts and images left by
a server that was killed outright are cleaned up by the next start on the same state
directory. Where images cannot be made or mounted (no root, no loop devices, no
``mkfs.ext4``), `WorkspaceDisks.create` gives None and only the per-file limit holds;
``/healthz`` says which.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["WorkspaceDisks"]

log = logging.getLogger(__name__)

_SUFFIX: Final = ".img"
_TIMEOUT: Final = 60.0
_MOUNT_OPTIONS: Final = "loop,nosuid,nodev"
_PROBE_MB: Final = 16


def _run(*command: str) -> None:
    done = subprocess.run(
        list(command), capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise OSError(f"{command[0]} failed: {detail[-1] if detail else done.returncode}")


def _mounted_below(root: Path) -> list[Path]:
    """Mount points at or below ``root`` (from ``/proc/self/mountinfo``)."""
    found = []
    prefix = str(root.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return found


class WorkspaceDisks:
    """The image files of one server's sandboxes, and their mounts."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def create(cls, directory: Path) -> WorkspaceDisks | None:
        """Disks in ``directory``, if this machine lets this server make and mount them."""
        if os.geteuid() != 0 or not shutil.which("mkfs.ext4") or not shutil.which("mount"):
            return None
        disks = cls(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.TemporaryDirectory(dir=directory) as scratch:
                probe = Path(scratch) / "probe"
                probe.mkdir()
                disks.attach("probe-" + Path(scratch).name, probe, size_mb=_PROBE_MB, uid=None)
                disks.detach("probe-" + Path(scratch).name, probe)
        except (OSError, subprocess.TimeoutExpired) as error:
            log.info("workspace disks cannot be used here (%s); file size limit only", error)
            return None
        return disks

    def image(self, name: str) -> Path:
        return self.directory / f"{name}{_SUFFIX}"

    def attach(self, name: str, workspace: Path, *, size_mb: int, uid: int | None) -> bool:
        """Mount sandbox ``name``'s disk on ``workspace`` (made, ``size_mb`` large and
        owned by ``uid``, if new); whether it is mounted. A workspace that already holds
        files and has no disk (a sandbox from before disks) is left as it is."""
        if os.path.ismount(workspace):
            return True
        image = self.image(name)
        if not image.exists():
            if workspace.is_dir() and any(workspace.iterdir()):
                return False
            with open(image, "wb") as file:
                file.truncate(size_mb * 1024 * 1024)
            owner = [] if uid is None else ["-E", f"root_owner={uid}:{uid}"]
            _run("mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal", *owner, str(image))
        workspace.mkdir(parents=True, exist_ok=True)
        _run("mount", "-o", _MOUNT_OPTIONS, str(image), str(workspace))
        with contextlib.suppress(OSError):
            (workspace / "lost+found").rmdir()
        return True

    def detach(self, name: str, workspace: Path, *, keep: bool = False) -> None:
        """Unmount sandbox ``name``'s disk (lazily, if something still holds it) and,
        unless ``keep``, remove its image."""
        for point in reversed(_mounted_below(workspace)):
            try:
                _run("umount", str(point))
            except (OSError, subprocess.TimeoutExpired):
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    _run("umount", "-l", str(point))
        if not keep:
            with contextlib.suppress(FileNotFoundError):
                self.image(name).unlink()

    def remove_stale(self, live: set[str], sandbox_root: Path) -> None:
        """Unmount what no live sandbox owns below ``sandbox_root`` and remove images
        of sandboxes that are gone (a killed server's, or warm ones never taken)."""
        for point in _mounted_below(sandbox_root):
            relative = point.relative_to(sandbox_root.resolve()).parts
            if relative and relative[0] not in live:
                self.detach(relative[0], point, keep=True)
        for image in self.directory.glob(f"*{_SUFFIX}"):
            if image.name[: -len(_SUFFIX)] not in live:
                with contextlib.suppress(OSError):
                    image.unlink()
