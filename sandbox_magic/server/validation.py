"""Reading request bodies and query strings: typed values or a clear 400."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sandbox_magic.server.errors import ApiError

__all__ = [
    "expect_object",
    "optional_bool",
    "optional_int",
    "optional_object",
    "optional_str",
    "optional_str_map",
    "query_int",
    "required_str",
]


def expect_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ApiError.bad_request(f"The request body must be a JSON object, not {_kind(body)}.")
    return body


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def required_str(body: Mapping[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = body.get(key)
    if value is None:
        raise ApiError.bad_request(f"Field {key!r} is required.")
    if not isinstance(value, str):
        raise ApiError.bad_request(f"Field {key!r} must be a string, not {_kind(value)}.")
    if not allow_empty and not value:
        raise ApiError.bad_request(f"Field {key!r} must not be empty.")
    return value


def optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ApiError.bad_request(f"Field {key!r} must be a string, not {_kind(value)}.")
    return value


def optional_int(
    body: Mapping[str, Any], key: str, *, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError.bad_request(f"Field {key!r} must be an integer, not {_kind(value)}.")
    if minimum is not None and value < minimum:
        raise ApiError.bad_request(f"Field {key!r} must be at least {minimum}.")
    if maximum is not None and value > maximum:
        raise ApiError.bad_request(f"Field {key!r} must be at most {maximum}.")
    return value


def optional_bool(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise ApiError.bad_request(f"Field {key!r} must be a boolean, not {_kind(value)}.")


def optional_object(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApiError.bad_request(f"Field {key!r} must be an object, not {_kind(value)}.")
    return dict(value)


def optional_str_map(body: Mapping[str, Any], key: str) -> dict[str, str]:
    value = optional_object(body, key)
    for name, item in value.items():
        if not isinstance(item, str):
            raise ApiError.bad_request(
                f"Field {key!r} must map names to strings; {name!r} is {_kind(item)}."
            )
    return value


def query_int(
    params: Mapping[str, str], key: str, *, default: int | None, minimum: int, maximum: int
) -> int | None:
    raw = params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError.bad_request(f"Query parameter {key!r} must be an integer.") from None
    if not minimum <= value <= maximum:
        raise ApiError.bad_request(
            f"Query parameter {key!r} must be between {minimum} and {maximum}."
        )
    return value
