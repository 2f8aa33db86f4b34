"""The kernels' runtime directory (``/tmp/sbm-*``), and cleaning up after dead servers.

Each server makes one, short-named because Unix socket paths are limited to about
100 characters, and writes its pid into it. A server killed outright (SIGKILL)
cannot remove its own; the next server to start removes every ``sbm-*`` directory
whose owner is gone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import shutil
import tempfile
from pathlib import Path
from typing import Final

__all__ = ["make_runtime_dir", "raise_open_files_limit", "remove_stale_runtime_dirs"]

log = logging.getLogger(__name__)

PREFIX: Final = "sbm-"
OWNER_FILE: Final = "owner.pid"


def make_runtime_dir() -> Path:
    """A fresh private directory for this server's kernels, marked with its pid."""
    directory = Path(tempfile.mkdtemp(prefix=PREFIX))
    (directory / OWNER_FILE).write_text(f"{os.getpid()}\n")
    return directory


def _owner_alive(directory: Path) -> bool:
    try:
        pid = int((directory / OWNER_FILE).read_text().strip())
    except (OSError, ValueError):
        return True  # not ours to judge: no owner file (yet)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_runtime_dirs(base: Path | None = None) -> int:
    """Remove the runtime directories of servers that no longer run; how many."""
    root = base or Path(tempfile.gettempdir())
    removed = 0
    with contextlib.suppress(OSError):
        for directory in root.glob(f"{PREFIX}*"):
            if not directory.is_dir() or directory.is_symlink():
                continue
            try:
                if directory.stat().st_uid != os.geteuid() or _owner_alive(directory):
                    continue
            except OSError:
                continue
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d runtime directories of stopped servers", removed)
    return removed


def raise_open_files_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit; the new limit.

    Every kernel holds a few sockets in the server: with the common default of 256 or
    1024, a few dozen contexts would exhaust it (and libzmq aborts on that).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
