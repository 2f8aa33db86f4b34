"""sandbox_magic: run Jupyter cells in a remote code sandbox with ``%%sandbox``."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """Register ``%%sandbox`` and ``%sandbox`` (called by ``%load_ext sandbox_magic``)."""
    from sandbox_magic.notebook.extension import load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the magics, stop background polling and close connections."""
    from sandbox_magic.notebook.extension import unload

    unload(ipython)
