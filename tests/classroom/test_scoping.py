"""Scoping: a student sees and touches only its own sandboxes, on every route of the app.

The routes are read from the app's own route table, so a route added later is
covered (or this test names it).
"""

from __future__ import annotations

import httpx
import pytest

from sandbox_magic.server.app import route_table

_ROUTES = route_table()  # both API generations

SCOPED = [(m, p) for p, m, _ in _ROUTES if "{sandbox_id}" in p and p.startswith("/v1/")]
UNSCOPED = {(m, p) for p, m, _ in _ROUTES if "{sandbox_id}" not in p}


def test_every_route_is_either_scoped_or_known_to_be_global() -> None:
    assert len(SCOPED) >= 17
    assert {
        ("GET", "/healthz"),
        ("POST", "/v1/sandboxes"),
        ("GET", "/v1/sandboxes"),
        ("POST", "/v1/machines"),
        ("GET", "/v1/machines"),
        ("GET", "/v1/templates"),
        ("POST", "/v1/keys"),
        ("GET", "/v1/keys"),
        ("DELETE", "/v1/keys/{key_id}"),
        ("POST", "/v1/keys/{key_id}/rotate"),
        ("GET", "/v1/account/me"),
    } == UNSCOPED


@pytest.fixture
def owned(make_student):
    """Student A with a sandbox, a context, a finished run with an artifact, and B."""
    a, b = make_student(prefix="a"), make_student(prefix="b")
    sandbox_id = a.sandbox()
    context_id = a.context(sandbox_id)
    run = a.run(sandbox_id, context_id, "open('out.txt', 'w').write('mine'); 1 + 1")
    assert run["status"] == "succeeded", run
    artifacts = a.http.get(f"/v1/sandboxes/{sandbox_id}/code/artifacts").json()["items"]
    assert [item["name"] for item in artifacts] == ["out.txt"]
    ids = {
        "sandbox_id": sandbox_id,
        "context_id": context_id,
        "run_id": run["id"],
        "artifact_id": artifacts[0]["id"],
    }
    return a, b, ids


@pytest.mark.parametrize(("method", "path"), SCOPED, ids=[f"{m} {p}" for m, p in SCOPED])
def test_another_students_sandbox_answers_404(owned, method, path) -> None:
    a, b, ids = owned
    url = path.format(**ids)
    body = {"code": "import os; os.remove('out.txt')", "context_id": ids["context_id"]}
    response = b.http.request(method, url, json=body if method == "POST" else None)
    assert response.status_code == 404, response.text
    answer = response.json()  # nested under /v1/sandboxes, flat under /v1/machines
    error = (
        answer["error"]
        if isinstance(answer["error"], dict)
        else {
            "code": answer["code"],
            "message": answer["error"],
        }
    )
    assert error["code"] == "not_found"
    # worded exactly as for a sandbox that does not exist: nothing leaks
    assert error["message"] == f"Sandbox {ids['sandbox_id']} does not exist."
    # and A's things are untouched
    base = f"/v1/sandboxes/{ids['sandbox_id']}"
    assert a.http.get(base).status_code == 200
    assert [c["id"] for c in a.http.get(f"{base}/code/contexts").json()] == [ids["context_id"]]
    assert a.http.get(f"{base}/code/runs/{ids['run_id']}").json()["status"] == "succeeded"
    assert a.http.get(f"{base}/code/artifacts/{ids['artifact_id']}").status_code == 200
    assert len(a.http.get(f"{base}/code/runs").json()["items"]) == 1


def test_lists_show_only_ones_own_and_the_admin_sees_owners(owned, admin) -> None:
    a, b, ids = owned
    b_sandbox = b.sandbox()
    assert [s["id"] for s in a.http.get("/v1/sandboxes").json()] == [ids["sandbox_id"]]
    assert [s["id"] for s in b.http.get("/v1/sandboxes").json()] == [b_sandbox]
    assert "owner" not in a.http.get(f"/v1/sandboxes/{ids['sandbox_id']}").json()

    every = {s["id"]: s["owner"] for s in admin.get("/v1/sandboxes").json()}
    assert every[ids["sandbox_id"]] == a.name
    assert every[b_sandbox] == b.name
    assert admin.get(f"/v1/sandboxes/{ids['sandbox_id']}").json()["owner"] == a.name
    runs = admin.get(f"/v1/sandboxes/{ids['sandbox_id']}/code/runs").json()["items"]
    assert [run["id"] for run in runs] == [ids["run_id"]]


def test_a_deleted_sandbox_stays_private(owned) -> None:
    a, b, ids = owned
    base = f"/v1/sandboxes/{ids['sandbox_id']}"
    assert a.http.delete(base).status_code == 204
    # runs stay readable after the delete, for their owner only
    assert a.http.get(f"{base}/code/runs/{ids['run_id']}").status_code == 200
    assert b.http.get(f"{base}/code/runs/{ids['run_id']}").status_code == 404
    assert b.http.get(f"{base}/code/artifacts").status_code == 404


def test_idempotency_keys_do_not_cross_students(make_student) -> None:
    a, b = make_student(), make_student()
    headers = {"Idempotency-Key": "same-key-for-both"}
    first = a.http.post("/v1/sandboxes", json={}, headers=headers)
    second = b.http.post("/v1/sandboxes", json={}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    again = a.http.post("/v1/sandboxes", json={}, headers=headers)
    assert again.json()["id"] == first.json()["id"]


V1 = [(m, p) for p, m, _ in _ROUTES if p.startswith("/v1")]


@pytest.mark.parametrize(("method", "path"), V1, ids=[f"{m} {p}" for m, p in V1])
def test_every_v1_route_refuses_a_revoked_key(live_server, admin, method, path) -> None:
    made = admin.post("/v1/keys", json={"name": "gone-" + method.lower()}).json()
    admin.delete(f"/v1/keys/{made['id']}")
    url = path.format(
        sandbox_id="sb_x", context_id="ctx_x", run_id="run_x", artifact_id="art_x", key_id="k"
    )
    response = httpx.request(
        method,
        live_server.url + url,
        headers={"Authorization": f"Bearer {made['key']}"},
        json={} if method == "POST" else None,
    )
    assert response.status_code == 401, response.text
    body = response.json()  # nested error under /v1/sandboxes, flat under /v1/machines
    assert (body["error"]["code"] if isinstance(body["error"], dict) else body["code"]) == (
        "auth_failed"
    )
    assert made["key"] not in response.text
