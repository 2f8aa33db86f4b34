"""The local server speaks both API generations: /v1/sandboxes (0.x) and /v1/machines (1.x)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, start_server

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture(scope="module")
def streaming_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A 1.x-only server without async runs, like such a hosted deployment."""
    server = start_server(
        tmp_path_factory.mktemp("machines-only"), None, "--api", "machines", "--disable-async-runs"
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def machine(live_server: LiveServer) -> Iterator[tuple[httpx.Client, str]]:
    with live_server.client() as api:
        response = api.post("/v1/machines", json={"template": "code-interpreter"})
        assert response.status_code == 201, response.text
        machine_id = response.json()["id"]
        yield api, machine_id
        api.delete(f"/v1/machines/{machine_id}")


def _wait(api: httpx.Client, path: str, timeout: float = 60.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = api.get(path).json()
        if run["status"] in TERMINAL:
            return run
        assert time.monotonic() < deadline, f"run still {run['status']} after {timeout} s"
        time.sleep(0.02)


def test_machine_object_leaves_out_timestamps_without_a_value(live_server: LiveServer) -> None:
    with live_server.client() as api:
        created = api.post("/v1/machines", json={})
        try:
            assert created.status_code == 201
            body = created.json()
            assert None not in body.values()
            assert {"id", "status", "config", "template", "created_at"} <= body.keys()
            # the same sandbox under 0.x keeps its nulls
            old = api.get(f"/v1/sandboxes/{body['id']}").json()
            assert old["expires_at"] is None
            assert api.get(f"/v1/machines/{body['id']}").json() == body
        finally:
            api.delete(f"/v1/machines/{created.json()['id']}")


def test_machine_list_has_the_1x_shape(machine: tuple[httpx.Client, str]) -> None:
    api, machine_id = machine
    listing = api.get("/v1/machines", params={"limit": 1}).json()
    assert listing.keys() == {"items", "has_next", "next_token"}
    assert machine_id in {item["id"] for item in listing["items"]}
    assert isinstance(api.get("/v1/sandboxes").json(), list)


def test_errors_are_flat_under_machines_and_nested_under_sandboxes(live_server: LiveServer) -> None:
    with live_server.client() as api:
        flat = api.get("/v1/machines/sb_missing")
        nested = api.get("/v1/sandboxes/sb_missing")
    assert flat.status_code == nested.status_code == 404
    body = flat.json()
    assert isinstance(body["error"], str)
    assert body["code"] == "not_found"
    assert body["request_id"] == flat.headers["x-request-id"]
    assert nested.json()["error"]["code"] == "not_found"
    with httpx.Client(base_url=live_server.url) as anonymous:
        denied = anonymous.get("/v1/machines")
    assert denied.status_code == 401
    assert denied.json()["code"] == "auth_failed"


def test_runs_carry_machine_id_and_sandbox_id(machine: tuple[httpx.Client, str]) -> None:
    api, machine_id = machine
    base = f"/v1/machines/{machine_id}/code"
    context = api.post(f"{base}/contexts", json={}).json()
    created = api.post(
        f"{base}/runs",
        json={"code": "open('out.txt', 'w').write('x')\n1 + 1", "context_id": context["id"]},
    )
    assert created.status_code == 202
    assert created.json()["machine_id"] == created.json()["sandbox_id"] == machine_id
    final = _wait(api, f"{base}/runs/{created.json()['id']}")
    assert final["status"] == "succeeded"
    assert final["machine_id"] == machine_id
    [artifact] = final["execution"]["artifacts"]
    assert artifact["download_url"].startswith(f"/v1/machines/{machine_id}/")
    assert api.get(artifact["download_url"]).content == b"x"
    listed = api.get(f"{base}/runs", params={"context_id": context["id"]}).json()
    assert [run["machine_id"] for run in listed["items"]] == [machine_id]
    old = api.get(f"/v1/sandboxes/{machine_id}/code/runs/{final['id']}").json()
    assert old["machine_id"] == old["sandbox_id"] == machine_id


def test_interrupt_and_restart_answer_with_the_spec_bodies(
    machine: tuple[httpx.Client, str],
) -> None:
    api, machine_id = machine
    base = f"/v1/machines/{machine_id}/code/contexts"
    context = api.post(base, json={"language": "python"}).json()
    interrupted = api.post(f"{base}/{context['id']}/interrupt")
    restarted = api.post(f"{base}/{context['id']}/restart")
    assert interrupted.json()["status"] == "interrupted"
    assert restarted.json()["status"] == "restarted"
    assert restarted.json()["id"] == context["id"]


def test_reserved_cwd_is_refused(machine: tuple[httpx.Client, str]) -> None:
    api, machine_id = machine
    for cwd in ("/workspace/.nullspace", "/workspace/./.nullspace/runtime"):
        refused = api.post(f"/v1/machines/{machine_id}/code/contexts", json={"cwd": cwd})
        assert refused.status_code == 400
        assert "cwd is reserved" in refused.json()["error"]


def test_templates_and_code_interpreter_readiness(machine: tuple[httpx.Client, str]) -> None:
    api, machine_id = machine
    assert "code-interpreter" in {t["id"] for t in api.get("/v1/templates").json()}
    host = api.post(f"/v1/machines/{machine_id}/host", json={"port": 8888}).json()
    assert httpx.get(host["url"] + "/health").status_code == 200
    assert api.post(f"/v1/machines/{machine_id}/host", json={"port": 3000}).status_code == 404


def test_machines_only_server_has_no_sandboxes_paths(streaming_server: LiveServer) -> None:
    with streaming_server.client() as api:
        assert api.get("/v1/sandboxes").status_code == 404
        assert api.get("/v1/machines", params={"limit": 1}).status_code == 200


def test_disabled_async_runs_answer_like_the_hosted_service_and_execute_still_streams(
    streaming_server: LiveServer,
) -> None:
    with streaming_server.client() as api:
        machine_id = api.post("/v1/machines", json={}).json()["id"]
        base = f"/v1/machines/{machine_id}/code"
        context = api.post(f"{base}/contexts", json={}).json()
        refused = api.post(f"{base}/runs", json={"code": "1", "context_id": context["id"]})
        assert refused.status_code == 503
        assert refused.json()["code"] == "feature_unavailable"
        assert "async code runs require Supabase configuration" in refused.json()["error"]
        with api.stream(
            "POST", f"{base}/execute", json={"code": "print('hi')", "context_id": context["id"]}
        ) as response:
            events = [
                json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")
            ]
        assert {"type": "stdout", "text": "hi\n"}.items() <= events[0].items()
        api.delete(f"/v1/machines/{machine_id}")


def test_serve_flags_are_documented() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert "--disable-async-runs" in readme
    assert "--api machines" in readme


def test_the_services_credentials_never_reach_sandbox_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server started where the SDK's credentials are set keeps them from its kernels."""
    monkeypatch.setenv("NULLSPACE_TOKEN", "ns_live_do_not_leak")
    monkeypatch.setenv("NULLSPACE_API_KEY", "ns_live_do_not_leak_either")
    server = start_server(tmp_path / "state", None, "--warm-kernels", "0")
    try:
        with server.client() as api:
            machine_id = api.post("/v1/machines", json={}).json()["id"]
            code = "import os; print([k for k in os.environ if k.startswith('NULLSPACE')])"
            with api.stream(
                "POST", f"/v1/machines/{machine_id}/code/execute", json={"code": code}
            ) as response:
                text = "".join(response.iter_lines())
        assert "[]" in text
        assert "do_not_leak" not in text
    finally:
        server.stop()
