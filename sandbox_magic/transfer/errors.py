"""The one error type of the transfer package."""

from __future__ import annotations

from sandbox_magic.client import SandboxError

__all__ = ["TransferError"]


class TransferError(SandboxError):
    """A value could not be moved between the notebook and the sandbox.

    Raised for unsupported types, invalid names, size limits, malformed or tampered
    payloads and refusals reported by the sandbox side. The message says what to do.
    """
