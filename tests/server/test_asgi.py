"""The app in-process over httpx.ASGITransport (no sockets), lifespan handled by hand."""

from __future__ import annotations

import json

import anyio
import pytest

pytestmark = pytest.mark.anyio


_RUN_DEADLINE = 60.0


async def _wait(client, path: str) -> dict:
    with anyio.fail_after(_RUN_DEADLINE):  # a run that never ends fails the test, not the suite
        while True:
            run = (await client.get(path)).json()
            if run["status"] in ("succeeded", "failed", "cancelled"):
                return run
            await anyio.sleep(0.005)  # in-process: let the kernel's message pumps run


async def test_run_round_trip_in_process(asgi_server) -> None:
    async with asgi_server.client() as client:
        sandbox = (await client.post("/v1/sandboxes", json={})).json()["id"]
        base = f"/v1/sandboxes/{sandbox}"
        context = (await client.post(f"{base}/code/contexts", json={})).json()["id"]
        created = await client.post(
            f"{base}/code/runs", json={"code": "print('in process')\n7", "context_id": context}
        )
        assert created.status_code == 202
        assert created.json()["status"] == "queued"
        run = await _wait(client, f"{base}/code/runs/{created.json()['id']}")
        assert run["status"] == "succeeded"
        assert run["execution"]["logs"]["stdout"] == ["in process\n"]
        assert run["execution"]["results"][0]["text"] == "7"
        streamed = await client.post(f"{base}/code/execute", json={"code": "print(8)"})
        events = [json.loads(line[6:]) for line in streamed.text.splitlines() if line]
        assert events[0] == {"type": "stdout", "text": "8\n", "timestamp": events[0]["timestamp"]}
        assert (await client.delete(base)).status_code == 204


async def test_errors_in_process(asgi_server) -> None:
    async with asgi_server.client() as client:
        response = await client.post("/v1/sandboxes", content=b"{")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"
        client.headers.pop("Authorization")
        assert (await client.get("/v1/sandboxes")).status_code == 401
        assert (await client.get("/healthz")).status_code == 200
