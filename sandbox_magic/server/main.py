"""``sandbox-magic serve``: run the local server with uvicorn until SIGINT/SIGTERM.

Startup prints one machine-readable line once the socket is listening::

    sandbox-magic server ready at http://127.0.0.1:PORT

(``--port 0`` picks a free port; the line shows the real one). A generated token is
printed once, before that line, and written to ``<state-dir>/token`` (mode 0600).
On SIGINT/SIGTERM every kernel is shut down before the process exits; kernels also
die with the server if it is killed outright (see `kernelspecs`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import uvicorn

from sandbox_magic.server.app import create_app
from sandbox_magic.server.auth import TOKEN_FILE, ensure_token
from sandbox_magic.server.classroom.quotas import Quotas
from sandbox_magic.server.config import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    ServerConfig,
)
from sandbox_magic.server.confinement import IsolationUnavailable, LimitPolicy, detect
from sandbox_magic.server.runtime_dirs import raise_open_files_limit

__all__ = ["READY_PREFIX", "ServeOptions", "default_state_dir", "serve"]

READY_PREFIX: Final = "sandbox-magic server ready at "
TOKEN_ENV: Final = "SANDBOX_MAGIC_TOKEN"


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/sandbox-magic`` (``~/.local/state/sandbox-magic``)."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sandbox-magic"


@dataclass(frozen=True, slots=True)
class ServeOptions:
    """What ``sandbox-magic serve`` was asked for."""

    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    state_dir: Path | None = None
    warm_kernels: int = 1
    default_run_timeout: int = 300
    interrupt_grace: float = 3.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_level: str = "warning"
    api: str = "both"
    async_runs: bool = True
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    long_poll: bool = True
    file_endpoints: bool = True
    isolation: str = "auto"
    limits: LimitPolicy = field(default_factory=LimitPolicy)
    pass_env: tuple[str, ...] = ()
    internet: bool = True
    max_contexts: int = 32
    idle_timeout_ms: int = 0
    student_quotas: Quotas = field(default_factory=Quotas)
    cpu_demotion: bool = True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class _Server(uvicorn.Server):
    """uvicorn's server, announcing readiness once it listens."""

    def __init__(self, config: uvicorn.Config, url: str) -> None:
        super().__init__(config)
        self._url = url

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            print(f"{READY_PREFIX}{self._url}", flush=True)


def serve(options: ServeOptions) -> int:
    """Run the server in the foreground; returns the process exit code."""
    logging.basicConfig(
        level=options.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    state_dir = (options.state_dir or default_state_dir()).expanduser().resolve()
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Taken out of the environment: kernels inherit it, and the code they run has no
    # business holding the key to the server that runs it.
    token, generated = ensure_token(state_dir, options.token or os.environ.pop(TOKEN_ENV, None))
    if generated:
        print(
            f"sandbox-magic server token: {token}\n"
            f"  (shown once; also in {state_dir / TOKEN_FILE}, readable only by you)",
            flush=True,
        )
    try:
        confinement = detect(
            options.isolation, allow_internet=options.internet, pass_env=options.pass_env
        )
    except IsolationUnavailable as error:
        print(f"sandbox-magic: --isolation bwrap is not possible here: {error}", file=sys.stderr)
        return 1
    if not confinement.active and options.isolation == "auto":
        print(
            f"WARNING: sandbox-magic runs code UNCONFINED, as this user: {confinement.reason}. "
            "Install bubblewrap (Debian: apt-get install bubblewrap) to isolate sandboxes.",
            file=sys.stderr,
            flush=True,
        )
    if not _is_loopback(options.host):
        who = (
            "confined in a sandbox (bubblewrap)"
            if confinement.active
            else "as this user, UNCONFINED"
        )
        print(
            f"WARNING: sandbox-magic is listening on {options.host}, not on loopback. Anyone "
            f"who can reach this address and knows the token can run code, {who}.",
            file=sys.stderr,
            flush=True,
        )
    raise_open_files_limit()
    sock = _bind(options.host, options.port)
    config = ServerConfig(
        state_dir=state_dir,
        token=token,
        host=options.host,
        port=sock.getsockname()[1],
        warm_kernels=options.warm_kernels,
        default_run_timeout=options.default_run_timeout,
        interrupt_grace=options.interrupt_grace,
        max_body_bytes=options.max_body_bytes,
        api=options.api,
        async_runs=options.async_runs,
        max_file_bytes=options.max_file_bytes,
        long_poll=options.long_poll,
        file_endpoints=options.file_endpoints,
        isolation=options.isolation,
        confinement=confinement,
        limits=options.limits,
        pass_env=options.pass_env,
        internet=options.internet,
        max_contexts=options.max_contexts,
        default_inactivity_timeout_ms=options.idle_timeout_ms,
        student_quotas=options.student_quotas,
        cpu_demotion=options.cpu_demotion,
    )
    uv_config = uvicorn.Config(
        create_app(config),
        lifespan="on",
        log_level=options.log_level,
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    server = _Server(uv_config, _url(options.host, sock))
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0 if server.started else 1
