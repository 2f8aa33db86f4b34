"""``/workspace/.nullspace``: each sandbox's own runtime area, reserved as on the hosted service.

It holds the sandbox's own Python packages: ``pip install`` in a sandbox (``!pip``,
``%pip``, or ``pip`` in a bash cell) installs under ``.nullspace/python`` in its
workspace, never into the server's environment. The kernel environment says so:

- ``PIP_PREFIX`` points pip there (pip honours it in and out of a virtualenv);
- ``PYTHONPATH`` puts its ``site-packages`` first, so what the sandbox installed wins
  over the server's own packages, and a warm kernel adds it to ``sys.path`` when it
  is handed to the sandbox (`ACTIVATE_CODE`);
- ``PATH`` starts with its ``bin`` and the server interpreter's own ``bin`` (where
  ``pip`` is, even when the server was started without activating its venv).

A context may not use the area as its working directory: such a ``cwd`` is refused
with "cwd is reserved". The area is left out of artifact snapshots.
"""

from __future__ import annotations

import os
import posixpath
import sys
from pathlib import Path
from typing import Final

from sandbox_magic.server.errors import ApiError

__all__ = ["ACTIVATE_CODE", "AREA", "check_cwd", "kernel_env", "site_packages"]

#: The area's name inside a sandbox's workspace.
AREA: Final = ".nullspace"
_WORKSPACE: Final = "/workspace"


def _python_dir(workspace: str) -> str:
    return posixpath.join(workspace, AREA, "python")


def site_packages(workspace: str) -> str:
    """The sandbox's own ``site-packages``, for a workspace path as the code sees it."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return posixpath.join(_python_dir(workspace), "lib", version, "site-packages")


def kernel_env(workspace: Path, *, seen_as: str | None = None) -> dict[str, str]:
    """The environment that sends ``pip install`` into the sandbox's own area.

    ``workspace`` is the real directory (created here); ``seen_as`` the path the
    kernel sees it at, when that differs (a confined kernel sees ``/workspace``).
    """
    seen = seen_as or str(workspace)
    real_site = site_packages(str(workspace))
    Path(real_site).mkdir(parents=True, exist_ok=True)
    prefix = _python_dir(seen)
    python_path = [site_packages(seen)]
    if os.environ.get("PYTHONPATH"):
        python_path.append(os.environ["PYTHONPATH"])
    path = [posixpath.join(prefix, "bin"), str(Path(sys.executable).parent)]
    path.append(os.environ.get("PATH") or os.defpath)
    return {
        "PIP_PREFIX": prefix,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PYTHONPATH": os.pathsep.join(python_path),
        "PATH": os.pathsep.join(path),
    }


#: Run in a Python kernel: put ``PYTHONPATH``'s entries first on ``sys.path``. A warm
#: kernel started before it belonged to a sandbox; this gives it what a cold start gets
#: from ``PYTHONPATH``. Plain code, since a confined kernel cannot import this package.
ACTIVATE_CODE: Final = (
    "(lambda sys, os, importlib: ("
    "[(sys.path.remove(e) if e in sys.path else None, sys.path.insert(0, e)) "
    "for e in reversed([e for e in os.environ.get('PYTHONPATH', '').split(os.pathsep) if e])], "
    "importlib.invalidate_caches()))"
    "(__import__('sys'), __import__('os'), __import__('importlib'))"
)


def check_cwd(requested: str, *, workspace: Path) -> None:
    """Refuse a ``cwd`` inside the runtime area (as the code sees it, or as a real path)."""
    if requested.startswith("/"):
        normal = posixpath.normpath(requested)
    else:
        normal = posixpath.normpath(posixpath.join(_WORKSPACE, requested))
    reserved = posixpath.join(_WORKSPACE, AREA)
    real_area = (workspace / AREA).resolve()
    real = Path(requested).resolve() if requested.startswith("/") else None
    if (
        normal == reserved
        or normal.startswith(reserved + "/")
        or (real is not None and (real == real_area or real.is_relative_to(real_area)))
    ):
        raise ApiError.bad_request(
            f"cwd is reserved: {requested!r} is inside {reserved}, the sandbox runtime's "
            "own directory. Choose another working directory."
        )
