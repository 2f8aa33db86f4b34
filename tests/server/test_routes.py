"""Every route of the contract against the real server, field by field."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sandbox_magic.client import Artifact, Context, Sandbox


def test_healthz_needs_no_token(live_server) -> None:
    import httpx

    assert httpx.get(f"{live_server.url}/healthz").json()["status"] == "ok"
    wrong = httpx.get(f"{live_server.url}/healthz", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 200


def test_sandbox_create_list_get_delete(api) -> None:
    response = api.post(
        "/v1/sandboxes",
        json={"template": "code-interpreter", "timeout_ms": 60000, "metadata": {"who": "test"}},
    )
    assert response.status_code == 201
    body = response.json()
    sandbox = Sandbox.from_json(body)
    assert sandbox.id.startswith("sb_")
    assert sandbox.status == "running"
    assert sandbox.template == "code-interpreter"
    assert isinstance(sandbox.vcpus, int)
    assert isinstance(sandbox.memory_mb, int)
    assert sandbox.metadata == {"who": "test"}
    assert sandbox.timeout_ms == 60000
    assert sandbox.created_at
    assert sandbox.cwd
    confined = body["config"]["isolation"] == "bwrap"
    # Under isolation the cwd is the path the code sees, and the workspace is there.
    assert sandbox.cwd == "/workspace" if confined else Path(sandbox.cwd).is_dir()
    assert "_envs" not in body
    assert "_jail" not in body
    assert sandbox.id in [item["id"] for item in api.get("/v1/sandboxes").json()]
    assert api.get(f"/v1/sandboxes/{sandbox.id}").json() == body
    assert api.delete(f"/v1/sandboxes/{sandbox.id}").status_code == 204
    gone = api.get(f"/v1/sandboxes/{sandbox.id}")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"
    assert api.delete(f"/v1/sandboxes/{sandbox.id}").status_code == 404
    assert sandbox.id not in [item["id"] for item in api.get("/v1/sandboxes").json()]
    if not confined:
        assert not Path(sandbox.cwd).exists() or not any(Path(sandbox.cwd).iterdir())


def test_context_create_list_delete_and_cwd(sbx) -> None:
    response = sbx.api.post(f"{sbx.base}/code/contexts", json={"language": "python"})
    assert response.status_code == 201
    context = Context.from_json(response.json())
    assert context.language == "python"
    assert context.cwd is not None
    assert context.cwd.endswith("workspace")
    nested = sbx.api.post(
        f"{sbx.base}/code/contexts", json={"language": "python3", "cwd": "/workspace/sub"}
    ).json()
    assert nested["cwd"].endswith(os.path.join("workspace", "sub"))
    run = sbx.run("import os\nprint(os.getcwd(), os.access('.', os.W_OK))", nested["id"])
    assert run["execution"]["logs"]["stdout"] == [nested["cwd"] + " True\n"]
    listed = sbx.api.get(f"{sbx.base}/code/contexts").json()
    assert {c["id"] for c in listed} == {context.id, nested["id"]}
    assert sbx.api.delete(f"{sbx.base}/code/contexts/{context.id}").status_code == 204
    assert [c["id"] for c in sbx.api.get(f"{sbx.base}/code/contexts").json()] == [nested["id"]]
    assert sbx.api.delete(f"{sbx.base}/code/contexts/{context.id}").status_code == 404


def test_context_cwd_cannot_escape_the_sandbox(sbx) -> None:
    for cwd in ("../elsewhere", "workspace/../../x", "/etc/../../tmp/../.."):
        response = sbx.api.post(f"{sbx.base}/code/contexts", json={"cwd": cwd})
        assert response.status_code == 400, cwd
        assert response.json()["error"]["code"] == "invalid_request"


def test_unknown_language_lists_what_is_offered(sbx) -> None:
    response = sbx.api.post(f"{sbx.base}/code/contexts", json={"language": "cobol"})
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "cobol" in message
    assert "python" in message


def test_deleting_a_context_cancels_its_runs(sbx, wait_until) -> None:
    ctx = sbx.context()
    running = sbx.submit("import time\ntime.sleep(60)", ctx)
    queued = sbx.submit("1", ctx)
    wait_until(lambda: sbx.get(running["id"])["status"] == "running", what="running")
    assert sbx.api.delete(f"{sbx.base}/code/contexts/{ctx}").status_code == 204
    for run_id in (running["id"], queued["id"]):
        run = sbx.wait(run_id)
        assert run["status"] == "cancelled"
        assert run["failure_reason"] == "the context was deleted"
    missing = sbx.api.post(f"{sbx.base}/code/runs", json={"code": "1", "context_id": ctx})
    assert missing.status_code == 404


def test_list_runs_filters_and_paginates(sbx) -> None:
    first, second = sbx.context(), sbx.context()
    ids = [sbx.run(code, first)["id"] for code in ("1", "2", "raise ValueError('x')")]
    other = sbx.run("3", second)["id"]
    page = sbx.api.get(f"{sbx.base}/code/runs").json()
    assert [run["id"] for run in page["items"]] == [other, *reversed(ids)]
    assert page["next_cursor"] is None
    failed = sbx.api.get(f"{sbx.base}/code/runs", params={"status": "failed"}).json()
    assert [run["id"] for run in failed["items"]] == [ids[2]]
    mine = sbx.api.get(f"{sbx.base}/code/runs", params={"context_id": second}).json()
    assert [run["id"] for run in mine["items"]] == [other]
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = sbx.api.get(f"{sbx.base}/code/runs", params=params).json()
        assert len(page["items"]) <= 2
        seen += [run["id"] for run in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [other, *reversed(ids)]


def test_runs_of_another_sandbox_are_not_found(api, sbx) -> None:
    run = sbx.run("1", sbx.context())
    other = api.post("/v1/sandboxes", json={}).json()["id"]
    try:
        for path in (f"/code/runs/{run['id']}", f"/code/runs/{run['id']}/cancel"):
            method = "POST" if path.endswith("cancel") else "GET"
            response = api.request(method, f"/v1/sandboxes/{other}{path}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        assert api.get(f"{sbx.base}/code/runs/run_0000000000000000").status_code == 404
    finally:
        api.delete(f"/v1/sandboxes/{other}")


def test_cancel_of_a_finished_run_changes_nothing(sbx) -> None:
    run = sbx.run("1", sbx.context())
    response = sbx.api.post(f"{sbx.base}/code/runs/{run['id']}/cancel")
    assert response.status_code == 200
    assert response.json() == run


def _events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


def test_execute_streams_events_and_uses_a_default_context(sbx) -> None:
    first = sbx.api.post(f"{sbx.base}/code/execute", json={"code": "x = 5\nprint('a')\nx * 2"})
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/event-stream")
    events = _events(first.text)
    assert [e["type"] for e in events] == ["stdout", "result", "number_of_executions"]
    assert events[0]["text"] == "a\n"
    assert isinstance(events[0]["timestamp"], int)
    assert events[1]["text"] == "10"
    assert events[1]["is_main_result"] is True
    [default] = sbx.api.get(f"{sbx.base}/code/contexts").json()
    second = _events(sbx.api.post(f"{sbx.base}/code/execute", json={"code": "x"}).text)
    assert second[0]["text"] == "5"  # same default context: state kept
    assert len(sbx.api.get(f"{sbx.base}/code/contexts").json()) == 1
    failing = _events(
        sbx.api.post(
            f"{sbx.base}/code/execute", json={"code": "1/0", "context_id": default["id"]}
        ).text
    )
    [error] = [e for e in failing if e["type"] == "error"]
    assert error["name"] == "ZeroDivisionError"
    assert "ZeroDivisionError" in error["traceback"]


def test_execute_reports_a_timeout_as_an_error_event(sbx) -> None:
    ctx = sbx.context()
    response = sbx.api.post(
        f"{sbx.base}/code/execute",
        json={"code": "import time\ntime.sleep(30)", "context_id": ctx, "timeout": 1},
    )
    errors = [e for e in _events(response.text) if e["type"] == "error"]
    assert errors[-1]["name"] == "TimeoutError"
    assert errors[-1]["value"] == "timed out after 1 s"


def test_artifacts_are_collected_listed_downloaded_and_deleted(sbx) -> None:
    ctx = sbx.context()
    code = (
        "import matplotlib.pyplot as plt, os\n"
        "plt.plot([1, 2]); plt.savefig('plot.png'); plt.close()\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/data.bin', 'wb').write(bytes(range(256)) * 4)\n"
        "open('page.html', 'w').write('<p>hi</p>')\n"
        "os.symlink('/etc/passwd', 'leak.txt')\n"
    )
    run = sbx.run(code, ctx)
    assert run["status"] == "succeeded", run
    artifacts = {a["name"]: a for a in run["execution"]["artifacts"]}
    assert set(artifacts) == {"plot.png", "out/data.bin", "page.html"}  # no symlink
    image = Artifact.from_json(artifacts["plot.png"])
    assert image.kind == "image"
    assert image.mime_type == "image/png"
    assert image.context_id == ctx
    assert image.execution_count == run["execution"]["execution_count"]
    assert artifacts["page.html"]["kind"] == "html"
    assert artifacts["out/data.bin"]["kind"] == "file"

    listed = sbx.api.get(f"{sbx.base}/code/artifacts").json()
    assert {a["id"] for a in listed["items"]} == {a["id"] for a in artifacts.values()}
    images = sbx.api.get(f"{sbx.base}/code/artifacts", params={"kind": "image"}).json()
    assert [a["name"] for a in images["items"]] == ["plot.png"]
    by_count = sbx.api.get(
        f"{sbx.base}/code/artifacts",
        params={"context_id": ctx, "execution_count": image.execution_count, "limit": 1},
    ).json()
    assert len(by_count["items"]) == 1
    assert by_count["next_cursor"] is not None

    binary = artifacts["out/data.bin"]
    assert sbx.api.get(f"{sbx.base}/code/artifacts/{binary['id']}").json() == binary
    download = sbx.api.get(binary["download_url"])
    assert download.status_code == 200
    assert download.content == bytes(range(256)) * 4
    assert hashlib.sha256(download.content).hexdigest() == binary["sha256"]
    assert binary["size_bytes"] == 1024
    assert "attachment" in download.headers["content-disposition"]
    assert binary["preview_url"] is None
    assert sbx.api.get(f"{sbx.base}/code/artifacts/{binary['id']}/preview").status_code == 404
    preview = sbx.api.get(image.preview_url)
    assert preview.status_code == 200
    assert preview.content.startswith(b"\x89PNG")
    assert preview.headers["content-type"] == "image/png"
    assert "inline" in preview.headers["content-disposition"]

    assert sbx.api.delete(f"{sbx.base}/code/artifacts/{binary['id']}").status_code == 204
    assert sbx.api.get(f"{sbx.base}/code/artifacts/{binary['id']}").status_code == 404
    assert sbx.api.get(binary["download_url"]).status_code == 404


def test_only_new_or_changed_files_become_artifacts(sbx) -> None:
    ctx = sbx.context()
    sbx.run("open('a.txt', 'w').write('1'); open('b.txt', 'w').write('1')", ctx)
    again = sbx.run("open('b.txt', 'w').write('22')", ctx)
    assert [a["name"] for a in again["execution"]["artifacts"]] == ["b.txt"]
    assert sbx.run("1", ctx)["execution"]["artifacts"] == []


def test_artifact_ids_cannot_reach_outside(api, sbx) -> None:
    run = sbx.run("open('mine.txt', 'w').write('x')", sbx.context())
    [artifact] = run["execution"]["artifacts"]
    other = api.post("/v1/sandboxes", json={}).json()["id"]
    try:
        foreign = api.get(f"/v1/sandboxes/{other}/code/artifacts/{artifact['id']}/download")
        assert foreign.status_code == 404
    finally:
        api.delete(f"/v1/sandboxes/{other}")
    for bad in ("..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "art_..", "server.db", "token"):
        response = api.get(f"{sbx.base}/code/artifacts/{bad}/download")
        assert response.status_code == 404, bad
        assert response.json()["error"]["code"] == "not_found"


def test_execute_cancels_the_run_when_the_client_goes_away(sbx, wait_until) -> None:
    ctx = sbx.context()
    code = "import time\nprint('go', flush=True)\ntime.sleep(60)"
    with sbx.api.stream(
        "POST", f"{sbx.base}/code/execute", json={"code": code, "context_id": ctx}
    ) as response:
        run_id = response.headers["x-run-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # first event seen; now hang up
    final = wait_until(
        lambda: (run := sbx.get(run_id))["status"] in ("cancelled", "failed") and run,
        what="the abandoned run to stop",
    )
    assert final["status"] == "cancelled"
    assert final["execution"]["logs"]["stdout"] == ["go\n"]


def test_long_poll_answers_at_the_next_change(sbx) -> None:
    ctx = sbx.context()
    run = sbx.submit("import time\ntime.sleep(0.5)\nprint('x', flush=True)\ntime.sleep(0.5)", ctx)
    path = f"{sbx.base}/code/runs/{run['id']}"
    seen, version, answers = [], None, 0
    while True:
        params = {"wait_ms": 5000} | ({"after_version": version} if version else {})
        response = sbx.api.get(path, params=params)
        answers += 1
        body = response.json()
        version = response.headers["x-run-version"]
        seen.append((body["status"], len(body["execution"]["logs"]["stdout"])))
        if body["status"] in ("succeeded", "failed", "cancelled"):
            break
    assert body["status"] == "succeeded"
    assert ("running", 1) in seen  # the print woke the poll mid-run
    assert answers < 15  # woken by changes, not spinning
    _fast = sbx.api.get(path, params={"wait_ms": 30000})  # a finished run answers at once
    assert _fast.json()["status"] == "succeeded"
    bad = sbx.api.get(path, params={"wait_ms": 999999})
    assert bad.status_code == 400
