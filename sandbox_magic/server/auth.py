"""The bearer token: where it comes from, where it is kept, how requests prove it.

The token is compared in constant time. It is never logged: the only place it is
shown is the single line `main` prints at startup when it generated the token.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path
from typing import Final

__all__ = ["TOKEN_FILE", "bearer_matches", "ensure_token", "write_private"]

TOKEN_FILE: Final = "token"


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to a file only the current user can read (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def ensure_token(state_dir: Path, given: str | None) -> tuple[str, bool]:
    """The token to require (``given``, or a fresh one) and whether it was generated.

    Either way it is written to ``<state_dir>/token`` (mode 0600) so local tools can
    find it.
    """
    token = given or secrets.token_urlsafe(32)
    write_private(state_dir / TOKEN_FILE, token + "\n")
    return token, not given


def bearer_matches(header: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries exactly this bearer token."""
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())
