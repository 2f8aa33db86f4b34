"""``/v1/keys`` (admin only) and ``/v1/account/me`` (anyone), as the hosted 1.x API has them.

- ``POST /v1/keys`` ``{"name", "scope"?, "admin"?, "quotas"?}`` -> 201, the key once;
- ``GET /v1/keys`` -> every key's metadata (never a secret or a hash);
- ``DELETE /v1/keys/{id}`` -> ``{"success": true}``; the key stops working at once;
- ``POST /v1/keys/{id}/rotate`` -> 201, a new key for the same name; the old one is revoked;
- ``GET /v1/account/me`` -> the caller's name, role, quotas and current usage (ours).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox_magic.server.classroom.quotas import parse_overrides
from sandbox_magic.server.classroom.tenancy import Principal, Tenancy
from sandbox_magic.server.errors import ApiError

__all__ = ["account_me", "create_key", "list_keys", "principal", "revoke_key", "rotate_key"]


def tenancy(request: Request) -> Tenancy:
    found: Tenancy = request.app.state.tenancy
    return found


def principal(request: Request) -> Principal:
    """The caller, as the gate authenticated it."""
    found: Principal = request.scope["state"]["principal"]
    return found


def require_admin(request: Request) -> Principal:
    caller = principal(request)
    if not caller.admin:
        raise ApiError(403, "permission_denied", "Only the teacher's (admin) key can manage keys.")
    return caller


def _no_store(payload: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(payload, status_code=status, headers={"Cache-Control": "no-store"})


async def create_key(request: Request, body: dict[str, Any]) -> Response:
    require_admin(request)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError.bad_request("'name' is required: whose key this is (e.g. a student's name).")
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise ApiError.bad_request("'scope' must be a string.")
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise ApiError.bad_request("'admin' must be true or false.")
    try:
        quotas = parse_overrides(body.get("quotas"))
        made = tenancy(request).keys.add(name, admin=admin, quotas=quotas, scope=scope)
    except ValueError as error:
        raise ApiError.bad_request(str(error)) from None
    return _no_store(made.to_json(), 201)


async def list_keys(request: Request) -> Response:
    require_admin(request)
    return _no_store([record.to_json() for record in tenancy(request).keys.all()])


async def revoke_key(request: Request) -> Response:
    require_admin(request)
    key_id = request.path_params["key_id"]
    if tenancy(request).keys.revoke(key_id) is None:
        raise ApiError.not_found(f"Key {key_id} does not exist.")
    return _no_store({"success": True})


async def rotate_key(request: Request) -> Response:
    require_admin(request)
    key_id = request.path_params["key_id"]
    made = tenancy(request).keys.rotate(key_id)
    if made is None:
        raise ApiError.not_found(f"Key {key_id} does not exist or was revoked.")
    return _no_store(made.to_json(), 201)


async def account_me(request: Request) -> Response:
    caller = principal(request)
    usage = tenancy(request).usage(caller.name)
    return _no_store({**caller.to_json(), "usage": usage})
