"""The local server under attack and under load: auth, isolation, escapes, soak, crash."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from testkit import wait_until

from sandbox_magic.server.app import route_table

REPO = Path(__file__).resolve().parents[2]
TERMINAL = {"succeeded", "failed", "cancelled"}


def _load_soak() -> Any:
    spec = importlib.util.spec_from_file_location("soak", REPO / "benchmarks" / "soak.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def api(live_server: Any) -> Any:
    with live_server.client() as client:
        yield client


def _wait(api: httpx.Client, base: str, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = api.get(f"{base}/code/runs/{run_id}").json()
        return run if run["status"] in TERMINAL else None

    result: dict[str, Any] = wait_until(ended, timeout=timeout, interval=0.01, what=run_id)
    return result


class Sandbox:
    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        self.id = api.post("/v1/sandboxes", json={}).json()["id"]
        self.base = f"/v1/sandboxes/{self.id}"
        self.context = api.post(f"{self.base}/code/contexts", json={}).json()["id"]

    def run(self, code: str) -> dict[str, Any]:
        body = {"code": code, "context_id": self.context}
        run = self.api.post(f"{self.base}/code/runs", json=body).json()
        return _wait(self.api, self.base, run["id"])

    def delete(self) -> None:
        self.api.delete(self.base)


@pytest.fixture
def two_sandboxes(api: httpx.Client) -> Any:
    first, second = Sandbox(api), Sandbox(api)
    yield first, second
    first.delete()
    second.delete()


@pytest.mark.parametrize(
    ("method", "path"),
    [(method, path) for path, method, _ in route_table() if path.startswith("/v1")],
)
def test_every_v1_route_answers_401_without_the_token(
    live_server: Any, method: str, path: str
) -> None:
    concrete = re.sub(r"\{(\w+)\}", lambda m: f"{m.group(1)[:3]}_0123456789abcdef", path)
    response = httpx.request(method, live_server.url + concrete, json={"code": "1"})
    assert response.status_code == 401, (method, concrete, response.text)
    body = response.json()  # nested error under /v1/sandboxes, flat under /v1/machines
    code = body["error"]["code"] if isinstance(body["error"], dict) else body["code"]
    assert code == "auth_failed"


def test_the_server_listens_on_loopback_only_by_default(live_server: Any) -> None:
    process = psutil.Process(live_server.process.pid)
    listening = [c for c in process.net_connections("inet") if c.status == psutil.CONN_LISTEN]
    assert listening
    assert {c.laddr.ip for c in listening} == {"127.0.0.1"}


def test_another_sandboxs_runs_contexts_and_artifacts_are_not_found(
    two_sandboxes: tuple[Sandbox, Sandbox],
) -> None:
    mine, other = two_sandboxes
    run = mine.run("open('mine.txt', 'w').write('private')\nprint('hi')")
    [artifact] = run["execution"]["artifacts"]
    api, there = other.api, other.base
    probes = [
        ("GET", f"{there}/code/runs/{run['id']}", None),
        ("POST", f"{there}/code/runs/{run['id']}/cancel", None),
        ("POST", f"{there}/code/runs", {"code": "1", "context_id": mine.context}),
        ("POST", f"{there}/code/execute", {"code": "1", "context_id": mine.context}),
        ("POST", f"{there}/code/contexts/{mine.context}/restart", None),
        ("POST", f"{there}/code/contexts/{mine.context}/interrupt", None),
        ("DELETE", f"{there}/code/contexts/{mine.context}", None),
        ("GET", f"{there}/code/artifacts/{artifact['id']}", None),
        ("GET", f"{there}/code/artifacts/{artifact['id']}/download", None),
        ("GET", f"{there}/code/artifacts/{artifact['id']}/preview", None),
        ("DELETE", f"{there}/code/artifacts/{artifact['id']}", None),
    ]
    for method, path, body in probes:
        response = api.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "private" not in response.text
    listed = api.get(f"{there}/code/runs", params={"context_id": mine.context}).json()
    assert listed["items"] == []
    assert api.get(f"{there}/code/artifacts").json()["items"] == []
    # ...and nothing of the first sandbox was touched.
    assert api.get(f"{mine.base}/code/artifacts/{artifact['id']}/download").text == "private"
    assert mine.run("1 + 1")["execution"]["results"][0]["text"] == "2"


def test_symlinks_made_by_the_code_never_serve_files_from_outside(
    two_sandboxes: tuple[Sandbox, Sandbox], live_server: Any
) -> None:
    sandbox, _ = two_sandboxes
    token_file = live_server.state_dir / "token"
    code = (
        "import os\n"
        "os.symlink('/etc/passwd', 'passwd')\n"
        "os.symlink('/etc', 'etc')\n"
        "os.makedirs('sub', exist_ok=True)\n"
        f"os.symlink({str(token_file)!r}, 'sub/token.txt')\n"
        "os.symlink('..', 'sub/up')\n"
        "open('real.txt', 'w').write('inside')\n"
    )
    run = sandbox.run(code)
    assert run["status"] == "succeeded", run
    names = [a["name"] for a in run["execution"]["artifacts"]]
    assert names == ["real.txt"]
    listing = sandbox.api.get(f"{sandbox.base}/code/artifacts").json()["items"]
    assert [a["name"] for a in listing] == ["real.txt"]
    for artifact in listing:
        content = sandbox.api.get(f"{sandbox.base}/code/artifacts/{artifact['id']}/download")
        assert content.text == "inside"
    # Escaping artifact ids, raw and percent-encoded, are refused before any lookup.
    for bad in ("..%2F..%2Ftoken", "%2E%2E", "art_0123456789abcdef%2F..", "/etc/passwd"):
        response = sandbox.api.get(f"{sandbox.base}/code/artifacts/{bad}/download")
        assert response.status_code in (400, 404), (bad, response.text)
        assert live_server.token not in response.text


def test_context_working_directories_cannot_leave_the_sandbox(
    two_sandboxes: tuple[Sandbox, Sandbox],
) -> None:
    sandbox, _ = two_sandboxes
    sandbox.run("import os\nos.symlink('/tmp', 'outside')")
    for cwd in ("../..", "/etc", "outside", "outside/x", "a/../../b"):
        response = sandbox.api.post(f"{sandbox.base}/code/contexts", json={"cwd": cwd})
        if response.status_code == 201:  # an absolute path is taken inside the sandbox
            assert response.json()["cwd"].startswith(
                sandbox.api.get(sandbox.base).json()["cwd"].rsplit("/workspace", 1)[0]
            ), (cwd, response.json())
            sandbox.api.delete(f"{sandbox.base}/code/contexts/{response.json()['id']}")
        else:
            assert response.status_code == 400, (cwd, response.text)


@pytest.mark.slow
def test_soak_leaves_no_kernels_fds_or_memory_behind(
    tmp_path: Path, record_figures: Callable[[str, dict[str, Any]], None]
) -> None:
    soak = _load_soak()
    with soak.soak_server(tmp_path / "state") as (url, token, pid):
        figures = soak.run_soak(url, token, pid, runs=120, contexts=8, warm_kernels=1)
    record_figures("soak_ci", figures)
    assert sum(figures["runs_by_kind_and_status"].values()) == 120
    assert figures["kernels_after"] == figures["kernels_before"]
    assert figures["fds_after"] <= figures["fds_before"] + 10
    assert figures["rss_mb_growth"] < 50
    assert figures["seconds"] < 90
