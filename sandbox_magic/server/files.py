"""Raw file endpoints, as the hosted API has them: ``PUT``/``GET .../file?path=``.

``path`` names a file inside the sandbox the way its code sees it: a path under the
sandbox's directory as the kernel sees it, ``/workspace/...`` (the hosted layout) or
any other absolute path, which is taken relative to the sandbox's root; relative paths
are relative to the root too. ``..``, symlinks and anything else leading outside the
root are refused (400), as are directories.

``PUT`` streams the body into a temporary file next to the target and renames it into
place (a reader never sees half a file; a symlink at the target is replaced, never
followed); bodies over ``max_file_bytes`` get 413 and leave nothing behind. It answers
204, as the hosted API does. ``GET`` answers the bytes (404 if there is no such file).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path, PurePosixPath

from starlette.requests import Request
from starlette.responses import FileResponse, Response

from sandbox_magic.server.artifacts import safe_join
from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.service import SandboxService
from sandbox_magic.wire import INVALID_REQUEST

__all__ = ["get_file", "put_file", "sandbox_path"]

_MAX_PATH = 4096


def sandbox_path(root: Path, requested: str) -> Path:
    """The real path of ``requested`` inside the sandbox whose directory is ``root``."""
    if not requested or len(requested) > _MAX_PATH:
        raise ApiError.bad_request("The query parameter 'path' must name a file.")
    path = PurePosixPath(requested)
    relative = requested
    if path.is_absolute():
        real_root = root.resolve()
        if Path(requested).is_relative_to(real_root):
            relative = Path(requested).relative_to(real_root).as_posix()
        else:  # "/workspace/x" means <sandbox>/workspace/x
            relative = requested.lstrip("/")
    if relative in ("", "."):
        raise ApiError.bad_request(f"Path {requested!r} is a directory, not a file.")
    return safe_join(root, relative)


def _target(request: Request) -> tuple[SandboxService, Path, Path]:
    service: SandboxService = request.app.state.service
    sandbox = service.sandbox(request.path_params["sandbox_id"])
    requested = request.query_params.get("path") or ""
    return service, sandbox.root, sandbox_path(sandbox.root, requested)


def _own(request: Request, path: Path) -> None:
    """Give a new file or folder to the sandbox's own uid (when kernels are confined)."""
    service: SandboxService = request.app.state.service
    sandbox = service.sandbox(request.path_params["sandbox_id"])
    service.confinement.own_file(sandbox.jail, path)


async def put_file(request: Request) -> Response:
    """Write the request body to ``path`` (parents created), atomically."""
    service, root, target = _target(request)
    limit = service.config.max_file_bytes
    if target.is_dir():
        raise ApiError.bad_request("The path names a directory, not a file.")
    missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    for folder in reversed(missing):  # outermost first, each given to the sandbox
        folder.mkdir(exist_ok=True)
        _own(request, folder)
    if not target.parent.resolve().is_relative_to(root.resolve()):
        raise ApiError.bad_request("The path leads outside the sandbox.")
    partial = target.with_name(f".{target.name}.part-{secrets.token_hex(4)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(partial, flags, 0o600)
    size = 0
    try:
        with os.fdopen(fd, "wb", buffering=0) as writer:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, INVALID_REQUEST, f"The file is larger than {limit} bytes.")
                writer.write(chunk)
        _own(request, partial)
        os.replace(partial, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            partial.unlink()
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ApiError(
                507,
                INVALID_REQUEST,
                f"The sandbox's disk is full: the file did not fit ({size} bytes written "
                "before it ran out). Delete files in the sandbox, or create it with a "
                "larger disk_mb.",
            ) from None
        raise
    return Response(status_code=204)


async def get_file(request: Request) -> Response:
    """The bytes of the file at ``path``."""
    _, _, target = _target(request)
    try:
        info = os.lstat(target)
    except FileNotFoundError:
        raise ApiError.not_found("There is no file at that path in the sandbox.") from None
    except OSError as error:
        raise ApiError.bad_request(f"The file cannot be read: {error.strerror}.") from None
    if not stat.S_ISREG(info.st_mode):
        raise ApiError.bad_request("The path does not name a regular file.")
    return FileResponse(target, media_type="application/octet-stream", stat_result=info)
