"""The local sandbox server: the wire contract served by real Jupyter kernels.

With bubblewrap available each sandbox's kernels run confined (see `confinement`);
without it, code runs unconfined as the local user. Start it with
``sandbox-magic serve``; build the ASGI app in-process with `create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["ServeOptions", "ServerConfig", "create_app", "serve"]

if TYPE_CHECKING:
    from sandbox_magic.server.app import create_app
    from sandbox_magic.server.config import ServerConfig
    from sandbox_magic.server.main import ServeOptions, serve


def __getattr__(name: str) -> Any:
    """Import lazily: importing the package must stay cheap."""
    if name == "create_app":
        from sandbox_magic.server.app import create_app

        return create_app
    if name == "ServerConfig":
        from sandbox_magic.server.config import ServerConfig

        return ServerConfig
    if name in ("ServeOptions", "serve"):
        from sandbox_magic.server import main

        return getattr(main, name)
    raise AttributeError(name)
