"""The teacher's dashboard reads each sandbox's CPU and memory from its cgroups."""

from __future__ import annotations

import shutil
import time
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test.sh installs it)"
)

HOG = (
    "import threading\nheld = bytearray(120 * 1024 * 1024)\n"
    "def spin():\n    while True:\n        pass\n"
    "threading.Thread(target=spin, daemon=True).start()\n"
)


def test_the_dashboard_shows_a_sandboxs_cpu_and_memory_from_its_cgroups(
    server_factory: Any,
) -> None:
    server = server_factory(None, None, "--isolation", "bwrap")
    with server.client() as admin:
        limits = str(admin.get("/healthz").json()["isolation"]["limits"])
        if not limits.startswith("cgroup"):
            pytest.skip("no writable cgroups on this machine")
        key = admin.post("/v1/keys", json={"name": "ada"}).json()["key"]
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as ada:
        sandbox = ada.post("/v1/sandboxes", json={}).json()["id"]
        run = ada.post(
            f"/v1/sandboxes/{sandbox}/code/execute", json={"code": HOG, "keep_processes": True}
        )
        assert run.status_code == 200, run.text
    with httpx.Client(base_url=server.url, timeout=30) as browser_like:
        assert browser_like.post("/dashboard/login", json={"key": server.token}).status_code == 200
        deadline = time.monotonic() + 30
        while True:
            state = browser_like.get("/dashboard/api/state").json()
            [student] = [s for s in state["students"] if s["name"] == "ada"]
            [row] = student["sandboxes"]
            [context] = row["contexts"]
            # the held 120 MB and the interpreter it runs in (moved in with its charges)
            busy = (row["cpu_percent"] or 0) > 50 and (row["memory_mb"] or 0) > 140
            busy = busy and (context["memory_mb"] or 0) > 140
            if busy or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert row["usage_source"] == "cgroup"
    assert busy, (row["memory_mb"], context["memory_mb"])  # the CPU and the memory, counted
    assert student["memory_mb"] == row["memory_mb"]
