"""The one exception the server raises to answer a request with an error.

The app writes it in the error shape of the request's API generation
(`sandbox_magic.server.generations.error_body_for`).
"""

from __future__ import annotations

from typing import Any

from sandbox_magic.wire import INVALID_REQUEST, NOT_FOUND

__all__ = ["ApiError", "error_body"]


class ApiError(Exception):
    """An HTTP error answer: status, machine-readable code and a message for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.headers = headers or {}

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, INVALID_REQUEST, message)

    @classmethod
    def not_found(cls, message: str) -> ApiError:
        return cls(404, NOT_FOUND, message)

    @classmethod
    def conflict(cls, message: str) -> ApiError:
        return cls(409, INVALID_REQUEST, message)


def error_body(code: str, message: str, request_id: str, *, retryable: bool) -> dict[str, Any]:
    """The contract's JSON error shape."""
    return {
        "error": {
            "message": message,
            "code": code,
            "request_id": request_id,
            "retryable": retryable,
        }
    }
