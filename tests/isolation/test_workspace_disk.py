"""A confined sandbox's /workspace is a filesystem of its own, ``disk_mb`` large."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test.sh installs it)"
)

TERMINAL = {"succeeded", "failed", "cancelled"}

FILL = """
import json, os
written, error = 0, None
try:
    with open('/workspace/fill.bin', 'wb') as out:
        while written < 200 * 1024 * 1024:
            out.write(b'x' * (1024 * 1024))
            out.flush()
            written += 1024 * 1024
except OSError as exc:
    error = exc.errno
os.remove('/workspace/fill.bin')
stats = os.statvfs('/workspace')
print(json.dumps({"written_mb": written // 2**20, "errno": error,
                  "size_mb": stats.f_blocks * stats.f_frsize // 2**20}))
"""


def _run(api: httpx.Client, sandbox: str, context: str, code: str) -> dict[str, Any]:
    response = api.post(
        f"/v1/sandboxes/{sandbox}/code/runs", json={"code": code, "context_id": context}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while (run := api.get(f"/v1/sandboxes/{sandbox}/code/runs/{run_id}").json())[
        "status"
    ] not in TERMINAL:
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run


def _report(api: httpx.Client, sandbox: str, context: str, code: str) -> Any:
    import json

    run = _run(api, sandbox, context, code)
    assert run["status"] == "succeeded", run
    return json.loads("".join(run["execution"]["logs"]["stdout"]).strip().splitlines()[-1])


def _mounted(path: Path) -> bool:
    return os.path.ismount(path)


def test_the_workspace_holds_disk_mb_and_no_more(server_factory: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = server_factory(state, None, "--isolation", "bwrap")
    with server.client() as api:
        if "filesystem of its own" not in str(api.get("/healthz").json()["isolation"]):
            pytest.skip("no loop-mounted filesystems on this machine")
        made = api.post("/v1/sandboxes", json={"disk_mb": 64}).json()
        sandbox = made["id"]
        assert made["config"]["disk_mb"] == 64
        assert made["config"]["limits"]["disk_mb"] == 64
        context = api.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={}).json()["id"]
        seen = _report(api, sandbox, context, FILL)
        assert seen["errno"] == 28, seen  # ENOSPC: the disk, not the host, is full
        assert 40 <= seen["written_mb"] <= 64, seen
        assert 50 <= seen["size_mb"] <= 64, seen
        # The kernel goes on, and a file PUT past the space gets a clear answer.
        put = api.put(
            f"/v1/sandboxes/{sandbox}/file",
            params={"path": "/workspace/big.bin"},
            content=b"y" * (80 * 1024 * 1024),
        )
        assert put.status_code == 507, put.text
        assert "disk is full" in put.json()["error"]["message"]
        assert (
            api.put(
                f"/v1/sandboxes/{sandbox}/file",
                params={"path": "/workspace/kept.txt"},
                content=b"kept",
            ).status_code
            == 204
        )
        workspace = state / "sandboxes" / sandbox / "workspace"
        assert _mounted(workspace)
    # A restart on the same state mounts the same disk again, files and all.
    server.stop()
    assert not _mounted(workspace)  # a stopped server leaves no mount behind
    again = server_factory(state, server.token, "--isolation", "bwrap")
    with again.client() as api:
        context = api.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={}).json()["id"]
        run = _run(api, sandbox, context, "print(open('/workspace/kept.txt').read())")
        assert run["execution"]["logs"]["stdout"] == ["kept\n"], run
        assert api.delete(f"/v1/sandboxes/{sandbox}").status_code in (200, 204)
        image = state / "disks" / f"{sandbox}.img"
        deadline = time.monotonic() + 30
        while (image.exists() or _mounted(workspace)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not image.exists()
        assert not _mounted(workspace)
