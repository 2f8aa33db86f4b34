"""Keys: made, listed, revoked and rotated while the server runs, over the CLI and HTTP."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from typing import Any

import httpx


def _keys_cli(state_dir: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sandbox_magic.cli", "keys", "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _as(live_server: Any, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_cli_keys_work_at_once_on_the_running_server(live_server, admin) -> None:
    added = _keys_cli(live_server.state_dir, "add", "cli-ada", "--quota", "contexts=1")
    assert added.returncode == 0, added.stderr
    key = added.stdout.strip()
    assert key.startswith("smk_")
    assert "\n" not in key
    assert "shown once" in added.stderr
    with _as(live_server, key) as ada:
        me = ada.get("/v1/account/me").json()
        assert me["name"] == "cli-ada"
        assert me["admin"] is False
        assert me["quotas"]["contexts"] == 1
        assert ada.get("/v1/sandboxes").status_code == 200

        listed = _keys_cli(live_server.state_dir, "list")
        assert "cli-ada" in listed.stdout
        assert "student" in listed.stdout
        assert key not in listed.stdout
        assert key.rsplit("_", 1)[1] not in listed.stdout

        again = _keys_cli(live_server.state_dir, "add", "cli-ada")
        assert again.returncode == 2
        assert "already has an active key" in again.stderr

        revoked = _keys_cli(live_server.state_dir, "revoke", "cli-ada")
        assert revoked.returncode == 0, revoked.stderr
        refused = ada.get("/v1/sandboxes")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "auth_failed"
    assert key not in "".join(live_server.output)


def test_the_key_is_stored_only_as_a_hash(live_server, admin) -> None:
    made = admin.post("/v1/keys", json={"name": "hash-check"}).json()
    key = made["key"]
    raw = (live_server.state_dir / "keys.db").read_bytes()
    wal = live_server.state_dir / "keys.db-wal"
    if wal.exists():
        raw += wal.read_bytes()
    assert key.encode() not in raw
    assert key.rsplit("_", 1)[1].encode() not in raw
    with sqlite3.connect(live_server.state_dir / "keys.db") as db:
        (stored,) = db.execute("SELECT hash FROM keys WHERE id = ?", (made["id"],)).fetchone()
    assert len(stored) == 64
    assert stored != key
    assert (live_server.state_dir / "keys.db").stat().st_mode & 0o077 == 0
    admin.delete(f"/v1/keys/{made['id']}")


def test_http_keys_create_list_rotate_revoke(live_server, admin) -> None:
    created = admin.post("/v1/keys", json={"name": "http-bo", "scope": "class 3b"})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    first = created.json()
    assert {"id", "key", "prefix", "name", "scope"} <= set(first)
    assert first["key"].startswith(first["prefix"] + "_")

    listed = admin.get("/v1/keys").json()
    mine = [item for item in listed if item["id"] == first["id"]]
    assert mine
    assert mine[0]["is_active"]
    assert mine[0]["name"] == "http-bo"
    assert all("key" not in item and "hash" not in item for item in listed)
    assert first["key"] not in admin.get("/v1/keys").text

    with _as(live_server, first["key"]) as bo:
        sandbox_id = bo.post("/v1/sandboxes", json={}).json()["id"]
        rotated = admin.post(f"/v1/keys/{first['id']}/rotate", json={})
        assert rotated.status_code == 201, rotated.text
        second = rotated.json()
        assert second["name"] == "http-bo"
        assert second["rotation_parent_key_id"] == first["id"]
        assert bo.get("/v1/sandboxes").status_code == 401
    with _as(live_server, second["key"]) as bo:
        # the student's work belongs to the name, so it survives the rotation
        assert [s["id"] for s in bo.get("/v1/sandboxes").json()] == [sandbox_id]
        revoked = admin.delete(f"/v1/keys/{second['id']}")
        assert revoked.status_code == 200
        assert revoked.json() == {"success": True}
        assert bo.get("/v1/sandboxes").status_code == 401
    statuses = {item["id"]: item["is_active"] for item in admin.get("/v1/keys").json()}
    assert statuses[first["id"]] is False
    assert statuses[second["id"]] is False
    assert admin.delete(f"/v1/sandboxes/{sandbox_id}").status_code == 204
    assert admin.delete("/v1/keys/no-such-key").status_code == 404


def test_students_cannot_manage_keys(live_server, make_student) -> None:
    student = make_student()
    for method, path in [
        ("GET", "/v1/keys"),
        ("POST", "/v1/keys"),
        ("DELETE", f"/v1/keys/{student.key_id}"),
        ("POST", f"/v1/keys/{student.key_id}/rotate"),
    ]:
        response = student.http.request(method, path, json={"name": "x"})
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "permission_denied"


def test_bad_key_requests_answer_400(admin) -> None:
    for body, fragment in [
        ({}, "'name' is required"),
        ({"name": "admin"}, "not a usable key name"),
        ({"name": "a b"}, "not a usable key name"),
        ({"name": "q", "quotas": {"cpus": 1}}, "Unknown quota 'cpus'"),
        ({"name": "q", "quotas": {"contexts": "two"}}, "must be an integer"),
        ({"name": "q", "admin": "yes"}, "'admin' must be true or false"),
    ]:
        response = admin.post("/v1/keys", json=body)
        assert response.status_code == 400, (body, response.text)
        assert fragment in response.json()["error"]["message"]


def test_cli_quota_change_applies_on_the_next_request(live_server, make_student) -> None:
    student = make_student()
    sandbox_id = student.sandbox()
    assert student.http.get("/v1/account/me").json()["quotas"]["contexts"] == 4
    changed = _keys_cli(live_server.state_dir, "quota", student.name, "contexts=0")
    assert changed.returncode == 0, changed.stderr
    assert "contexts=0" in changed.stdout
    refused = student.http.post(f"/v1/sandboxes/{sandbox_id}/code/contexts", json={})
    assert refused.status_code == 429
    assert "Quota 'contexts' exceeded" in refused.json()["error"]["message"]
    bad = _keys_cli(live_server.state_dir, "quota", student.name, "contexts=many")
    assert bad.returncode == 2
    assert "not a whole number" in bad.stderr
