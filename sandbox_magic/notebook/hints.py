"""Notebook hints added to errors from the lower layers: which command or setting helps.

The client and the session word their errors for any caller; only here do they learn
about ``%sandbox`` and ``%config``.
"""

from __future__ import annotations

from typing import TypeVar

from sandbox_magic.client import (
    AuthenticationError,
    RemoteExecutionError,
    RunFailedError,
    SandboxConnectionError,
    SandboxError,
)
from sandbox_magic.session.sandbox_session import NoServerError

__all__ = ["with_hint"]

_E = TypeVar("_E", bound=BaseException)


def _hint_for(error: SandboxError) -> str | None:
    if isinstance(error, NoServerError):
        return (
            "In a notebook: `%sandbox connect URL` uses a server, "
            "`%config SandboxMagics.embedded = True` the local one."
        )
    if isinstance(error, AuthenticationError):
        return "In a notebook: `%config SandboxMagics.api_key = ...` sets it."
    if isinstance(error, RemoteExecutionError | RunFailedError):
        return None  # the run ended; its own message is the whole story
    if error.run_id is not None:
        run = error.run_id
        return (
            f"`%sandbox attach {run}` follows it again, `%sandbox cancel {run}` cancels it, "
            "`%sandbox runs` lists the runs."
        )
    if isinstance(error, SandboxConnectionError):
        return "`%sandbox status` shows the server in use."
    return None


def with_hint(error: _E) -> _E:
    """The same error, with the notebook hint that fits it (added once)."""
    if isinstance(error, SandboxError) and error.hint is None:
        error.hint = _hint_for(error)
    return error
