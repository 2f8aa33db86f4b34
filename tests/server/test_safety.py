"""Auth, bad input, size limits, idempotency, the token file and the bind warning."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import httpx
import pytest

ROUTES = [
    ("GET", "/v1/sandboxes"),
    ("POST", "/v1/sandboxes"),
    ("GET", "/v1/sandboxes/sb_x/code/runs"),
    ("POST", "/v1/sandboxes/sb_x/code/execute"),
    ("GET", "/v1/sandboxes/sb_x/code/artifacts/art_x/download"),
]


def _assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert isinstance(error["retryable"], bool)
    return error


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}],
    ids=["missing", "wrong", "scheme"],
)
def test_every_v1_route_needs_the_token(live_server, method, path, headers) -> None:
    response = httpx.request(method, live_server.url + path, headers=headers)
    _assert_error(response, 401, "auth_failed")
    assert response.headers["www-authenticate"] == "Bearer"
    assert live_server.token not in response.text


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "JSON object body is required"),
        (b'{"context_id": "c"}', "'code' is required"),
        (b'{"code": 1, "context_id": "c"}', "'code' must be a string"),
        (b'{"code": "1"}', "'context_id' is required"),
        (b'{"code": "1", "context_id": 5}', "'context_id' must be a string"),
        (b'{"code": "1", "context_id": "c", "envs": []}', "'envs' must be an object"),
        (b'{"code": "1", "context_id": "c", "envs": {"A": 1}}', "map names to strings"),
        (b'{"code": "1", "context_id": "c", "timeout": "5"}', "'timeout' must be an integer"),
        (b'{"code": "1", "context_id": "c", "timeout": 0}', "at least 1"),
        (b'{"code": "1", "context_id": "c", "timeout": true}', "must be an integer"),
    ],
)
def test_bad_run_requests_answer_400(sbx, body, fragment) -> None:
    response = sbx.api.post(
        f"{sbx.base}/code/runs", content=body, headers={"Content-Type": "application/json"}
    )
    error = _assert_error(response, 400, "invalid_request")
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sandboxes", {"metadata": []}),
        ("/v1/sandboxes", {"timeout_ms": "soon"}),
        ("/v1/sandboxes", {"envs": {"A": None, "B": 2}}),
        ("/v1/sandboxes", {"template": 3}),
    ],
)
def test_bad_sandbox_requests_answer_400(api, path, body) -> None:
    _assert_error(api.post(path, json=body), 400, "invalid_request")


def test_bad_queries_and_unknown_things(sbx) -> None:
    runs = f"{sbx.base}/code/runs"
    for params in ({"status": "sleeping"}, {"limit": "x"}, {"limit": 0}, {"cursor": "abc"}):
        _assert_error(sbx.api.get(runs, params=params), 400, "invalid_request")
    _assert_error(
        sbx.api.get(f"{sbx.base}/code/artifacts", params={"kind": "movie"}), 400, "invalid_request"
    )
    _assert_error(sbx.api.get("/v1/sandboxes/sb_nope"), 404, "not_found")
    _assert_error(sbx.api.get("/v1/sandboxes/sb_nope/code/runs"), 404, "not_found")
    _assert_error(
        sbx.api.post(runs, json={"code": "1", "context_id": "ctx_nope"}), 404, "not_found"
    )
    _assert_error(sbx.api.post(f"{sbx.base}/code/contexts/ctx_nope/restart"), 404, "not_found")
    _assert_error(
        sbx.api.post(f"{sbx.base}/code/execute", json={"code": "1", "context_id": "ctx_n"}),
        404,
        "not_found",
    )
    _assert_error(sbx.api.get("/v1/nothing-here"), 404, "not_found")
    _assert_error(sbx.api.put(f"{sbx.base}/code/runs"), 405, "invalid_request")


def test_oversized_bodies_answer_413(sbx) -> None:
    limit = 16 * 1024 * 1024
    big = b'{"code": "' + b"x" * limit + b'", "context_id": "c"}'
    _assert_error(sbx.api.post(f"{sbx.base}/code/runs", content=big), 413, "invalid_request")

    def chunks():  # no Content-Length: the limit holds while streaming too
        for _ in range(17):
            yield b" " * (1024 * 1024)

    _assert_error(sbx.api.post(f"{sbx.base}/code/runs", content=chunks()), 413, "invalid_request")


def test_idempotency_key_gives_back_the_same_sandbox(api) -> None:
    headers = {"Idempotency-Key": os.urandom(8).hex()}
    first = api.post("/v1/sandboxes", json={"metadata": {"k": 1}}, headers=headers)
    second = api.post("/v1/sandboxes", json={"metadata": {"k": 1}}, headers=headers)
    try:
        assert first.status_code == second.status_code == 201
        assert first.json() == second.json()
        ids = [s["id"] for s in api.get("/v1/sandboxes").json()]
        assert ids.count(first.json()["id"]) == 1
        conflict = api.post("/v1/sandboxes", json={"metadata": {"k": 2}}, headers=headers)
        _assert_error(conflict, 409, "invalid_request")
    finally:
        api.delete(f"/v1/sandboxes/{first.json()['id']}")


def test_idempotency_key_never_runs_code_twice(sbx) -> None:
    ctx = sbx.context()
    sbx.run("count = 0", ctx)
    body = {"code": "count += 1", "context_id": ctx}
    headers = {"Idempotency-Key": "run-once"}
    first = sbx.api.post(f"{sbx.base}/code/runs", json=body, headers=headers)
    second = sbx.api.post(f"{sbx.base}/code/runs", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    sbx.wait(first.json()["id"])
    assert sbx.run("count", ctx)["execution"]["results"][0]["text"] == "1"
    again = sbx.api.post(f"{sbx.base}/code/contexts", headers=headers)
    assert again.status_code == 201  # keys are scoped per kind of object
    same = sbx.api.post(f"{sbx.base}/code/contexts", headers=headers)
    assert same.json()["id"] == again.json()["id"]


def test_token_file_is_private_and_the_token_is_never_printed(live_server) -> None:
    token_file = live_server.state_dir / "token"
    assert token_file.read_text().strip() == live_server.token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert not any(live_server.token in line for line in live_server.output)


def _serve(
    tmp_path, *args: str, token: str | None = None, env: dict[str, str] | None = None
) -> tuple[str, str]:
    """Start a server, read until ready, stop it; ``(stdout, stderr)``."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    env.pop("SANDBOX_MAGIC_TOKEN", None)
    command = [sys.executable, "-m", "sandbox_magic.cli", "serve", "--port", "0"]
    command += ["--state-dir", str(tmp_path), "--warm-kernels", "0", *args]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("sandbox-magic server ready at "):
            break
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    return "".join(lines) + out, err


def test_generated_token_is_printed_once_and_saved(tmp_path) -> None:
    stdout, _ = _serve(tmp_path)
    token = (tmp_path / "token").read_text().strip()
    assert len(token) >= 32
    assert stdout.count(token) == 1
    assert "ready at http://127.0.0.1:" in stdout


def test_binding_beyond_loopback_warns_loudly(tmp_path) -> None:
    stdout, stderr = _serve(tmp_path, "--host", "0.0.0.0", "--token", "t" * 20)
    assert "WARNING" in stderr
    assert "not on loopback" in stderr
    assert "can run code" in stderr
    assert "t" * 20 not in stdout + stderr


def test_an_unconfined_server_says_so_loudly(tmp_path) -> None:
    _, stderr = _serve(tmp_path, "--isolation", "none", "--host", "0.0.0.0", "--token", "t" * 20)
    assert "UNCONFINED" in stderr


def test_isolation_bwrap_without_bubblewrap_refuses_to_start_saying_why(tmp_path) -> None:
    env = dict(os.environ, PATH=str(tmp_path))  # no bwrap, prlimit, setpriv on this PATH
    command = [sys.executable, "-m", "sandbox_magic.cli", "serve", "--port", "0"]
    command += ["--state-dir", str(tmp_path / "state"), "--isolation", "bwrap"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "--isolation bwrap is not possible here" in done.stderr
    assert "bwrap" in done.stderr
    assert "apt-get install bubblewrap" in done.stderr
    assert "Traceback" not in done.stderr


def test_auto_isolation_without_bubblewrap_runs_unconfined_with_a_warning(tmp_path) -> None:
    stdout, stderr = _serve(tmp_path, "--isolation", "auto", env={"PATH": str(tmp_path)})
    assert "ready at" in stdout
    assert "WARNING: sandbox-magic runs code UNCONFINED" in stderr
    assert "bwrap" in stderr
    assert os.environ.get("PATH")  # the test process itself is untouched


def test_kernels_do_not_inherit_the_token(sbx, live_server) -> None:
    run = sbx.run(
        "import os\nprint(any(v == os.environ.get('SANDBOX_MAGIC_TOKEN', '?') for v in [''])"
        ", 'SANDBOX_MAGIC_TOKEN' in os.environ)",
        sbx.context(),
    )
    assert run["execution"]["logs"]["stdout"] == ["False False\n"]
    assert live_server.token not in str(run)
