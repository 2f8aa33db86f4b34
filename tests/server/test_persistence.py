"""Restarts: finished runs and artifacts survive; runs in flight end failed; no orphans."""

from __future__ import annotations

import signal

import psutil
from testkit import wait_until

REASON = "the server stopped before the run finished"


def _wait(client, path: str, check, timeout: float = 30.0):
    def answered():
        body = client.get(path).json()
        return body if check(body) else None

    return wait_until(answered, timeout=timeout, interval=0.01, what=path)


def _start_long_run(client, sandbox: str, context: str) -> str:
    run = client.post(
        f"/v1/sandboxes/{sandbox}/code/runs",
        json={
            "code": "import time\nprint('started', flush=True)\ntime.sleep(120)",
            "context_id": context,
        },
    ).json()
    _wait(
        client,
        f"/v1/sandboxes/{sandbox}/code/runs/{run['id']}",
        lambda r: r["execution"]["logs"]["stdout"],
    )
    return str(run["id"])


def test_runs_and_artifacts_survive_restarts_and_crashes(server_factory, tmp_path) -> None:
    state = tmp_path / "state"
    first = server_factory(state)
    with first.client() as client:
        sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
        base = f"/v1/sandboxes/{sandbox}"
        context = client.post(f"{base}/code/contexts", json={}).json()["id"]
        done = client.post(
            f"{base}/code/runs",
            json={
                "code": "open('kept.txt', 'w').write('kept')\nprint('done')",
                "context_id": context,
            },
        ).json()
        finished = _wait(
            client, f"{base}/code/runs/{done['id']}", lambda r: r["status"] == "succeeded"
        )
        [artifact] = finished["execution"]["artifacts"]
        graceful = _start_long_run(client, sandbox, context)
    first.stop(signal.SIGTERM)  # asserts that no kernel is left

    second = server_factory(state)
    with second.client() as client:
        assert client.get(f"{base}/code/runs/{done['id']}").json() == finished
        stopped = client.get(f"{base}/code/runs/{graceful}").json()
        assert stopped["status"] == "failed"
        assert stopped["failure_reason"] == REASON
        assert stopped["failure_code"] == "server_stopped"
        assert stopped["execution"]["logs"]["stdout"] == ["started\n"]
        assert stopped["completed_at"] is not None
        assert client.get(artifact["download_url"]).content == b"kept"
        assert client.get(f"{base}/code/contexts").json() == []  # kernels do not survive
        context = client.post(f"{base}/code/contexts", json={}).json()["id"]
        crashed = _start_long_run(client, sandbox, context)
    kernels = second.descendants()
    assert kernels
    second.process.send_signal(signal.SIGKILL)
    second.process.wait(timeout=10)
    _, alive = psutil.wait_procs(kernels, timeout=10)  # kernels die with the server
    assert not [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    third = server_factory(state)
    with third.client() as client:
        lost = client.get(f"{base}/code/runs/{crashed}").json()
        assert lost["status"] == "failed"
        assert lost["failure_reason"] == REASON
        assert lost["failure_code"] == "server_stopped"
        statuses = {r["id"]: r["status"] for r in client.get(f"{base}/code/runs").json()["items"]}
        assert statuses == {done["id"]: "succeeded", graceful: "failed", crashed: "failed"}
        assert client.get(f"{base}").json()["id"] == sandbox
