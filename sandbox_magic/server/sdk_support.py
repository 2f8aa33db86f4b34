"""The few non-code routes the 1.x SDK's code-interpreter flow calls first.

- ``GET /v1/templates``: the templates offered (the SDK checks ``code-interpreter`` is one).
- ``POST /v1/machines/{id}/host`` with ``{"port": 8888}``: where the machine's code
  interpreter listens. The local server has no per-machine hosts; it answers with a
  readiness URL of its own, ``/preview/{id}/8888``, whose ``/health`` (no token, as a
  preview URL on the hosted service) says whether the sandbox is up. Other ports are
  not forwarded by the local server: 404 with a message saying so.
"""

from __future__ import annotations

import json
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from sandbox_magic.server.errors import ApiError
from sandbox_magic.server.validation import expect_object, optional_int

__all__ = ["CODE_INTERPRETER_PORT", "sdk_support_routes"]

CODE_INTERPRETER_PORT: Final = 8888
_TEMPLATES: Final = (
    {
        "id": "code-interpreter",
        "name": "code-interpreter",
        "description": "Jupyter kernels of the local server (Python, and any other installed)",
    },
)


async def list_templates(request: Request) -> Response:
    return JSONResponse([dict(template) for template in _TEMPLATES])


async def machine_host(request: Request) -> Response:
    sandbox_id = request.path_params["sandbox_id"]
    request.app.state.service.sandbox(sandbox_id)
    raw = await request.body()
    body: dict[str, Any] = {}
    if raw.strip():
        try:
            body = dict(expect_object(json.loads(raw)))
        except ValueError:
            raise ApiError.bad_request("The request body is not valid JSON.") from None
    port = optional_int(body, "port", minimum=1, maximum=65535)
    if port != CODE_INTERPRETER_PORT:
        raise ApiError.not_found(
            "The local server forwards no ports but the code interpreter's "
            f"({CODE_INTERPRETER_PORT})."
        )
    base = str(request.base_url).rstrip("/")
    return JSONResponse({"host": request.url.netloc, "url": f"{base}/preview/{sandbox_id}/{port}"})


async def preview_health(request: Request) -> Response:
    sandbox_id = request.path_params["sandbox_id"]
    if sandbox_id not in request.app.state.service.sandboxes:
        return JSONResponse({"status": "gone"}, status_code=404)
    return JSONResponse({"status": "ok"})


def sdk_support_routes() -> list[tuple[str, str, Any]]:
    """``(path, method, handler)`` rows for the app's route table."""
    return [
        ("/v1/templates", "GET", list_templates),
        ("/v1/machines/{sandbox_id}/host", "POST", machine_host),
        ("/preview/{sandbox_id}/{port:int}/health", "GET", preview_health),
    ]
