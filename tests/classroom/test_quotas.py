"""Quotas per key: a breach answers quota_exceeded naming the quota; nothing is half-made."""

from __future__ import annotations

import psutil


def _quota_error(response, status: int, quota: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert error["retryable"] is False
    assert f"Quota '{quota}' exceeded" in error["message"]
    return str(error["message"])


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:  # gone, or a zombie not yet reaped (a kernel that just ended)
        return []


def _of_sandbox(process: psutil.Process, sandbox_id: str) -> bool:
    """Whether a process runs for that sandbox: confined, its jail's mounts name the
    sandbox's folder; unconfined, it works in it."""
    try:
        return any(sandbox_id in part for part in _cmdline(process)) or (
            sandbox_id in process.cwd()
        )
    except psutil.Error:
        return False


def _kernels(live_server, sandbox_id: str) -> int:
    """The kernels running for one sandbox (warm kernels the server starts for later
    sandboxes meanwhile are not counted)."""
    return sum(
        1
        for child in psutil.Process(live_server.process.pid).children(recursive=True)
        if any("ipykernel" in part for part in _cmdline(child)) and _of_sandbox(child, sandbox_id)
    )


def test_sandboxes_quota(make_student) -> None:
    student = make_student({"sandboxes": 1})
    student.sandbox()
    message = _quota_error(student.http.post("/v1/sandboxes", json={}), 429, "sandboxes")
    assert "limit 1" in message
    assert len(student.http.get("/v1/sandboxes").json()) == 1
    # an Idempotency-Key does not get around it either
    again = student.http.post("/v1/sandboxes", json={}, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 429


def test_contexts_quota_starts_no_kernel(make_student, live_server) -> None:
    student = make_student({"contexts": 1})
    sandbox_id = student.sandbox()
    student.context(sandbox_id)
    kernels = _kernels(live_server, sandbox_id)
    assert kernels >= 1
    refused = student.http.post(f"/v1/sandboxes/{sandbox_id}/code/contexts", json={})
    _quota_error(refused, 429, "contexts")
    # execute without a context would make a default one: also refused
    refused = student.http.post(f"/v1/sandboxes/{sandbox_id}/code/execute", json={"code": "1"})
    _quota_error(refused, 429, "contexts")
    assert len(student.http.get(f"/v1/sandboxes/{sandbox_id}/code/contexts").json()) == 1
    assert _kernels(live_server, sandbox_id) == kernels


def test_concurrent_runs_quota(make_student) -> None:
    student = make_student({"concurrent_runs": 2})
    sandbox_id = student.sandbox()
    context_id = student.context(sandbox_id)
    first = student.submit(sandbox_id, context_id, "import time; time.sleep(30)")
    student.submit(sandbox_id, context_id, "2")
    refused = student.http.post(
        f"/v1/sandboxes/{sandbox_id}/code/runs", json={"code": "3", "context_id": context_id}
    )
    _quota_error(refused, 429, "concurrent_runs")
    runs = student.http.get(f"/v1/sandboxes/{sandbox_id}/code/runs").json()["items"]
    assert len(runs) == 2  # the refused run was never stored
    student.http.post(f"/v1/sandboxes/{sandbox_id}/code/runs/{first['id']}/cancel")
    student.wait(sandbox_id, first["id"])
    assert student.run(sandbox_id, context_id, "3")["status"] == "succeeded"


def test_run_timeout_quota(make_student) -> None:
    student = make_student({"run_timeout": 5})
    sandbox_id = student.sandbox()
    context_id = student.context(sandbox_id)
    refused = student.http.post(
        f"/v1/sandboxes/{sandbox_id}/code/runs",
        json={"code": "1", "context_id": context_id, "timeout": 60},
    )
    message = _quota_error(refused, 403, "run_timeout")
    assert "at most 5 s" in message
    run = student.run(sandbox_id, context_id, "1")
    assert run["timeout_secs"] == 5  # the server default is capped at the quota


def test_output_bytes_quota_stops_the_run(make_student) -> None:
    student = make_student({"output_bytes": 10_000})
    sandbox_id = student.sandbox()
    context_id = student.context(sandbox_id)
    flood = "import time\nwhile True:\n    print('x' * 999)\n    time.sleep(0.001)"
    run = student.run(sandbox_id, context_id, flood)
    assert run["status"] == "failed"
    assert "quota 'output_bytes' exceeded" in run["failure_reason"]
    # the context is still usable, with its variables
    assert student.run(sandbox_id, context_id, "a = 41; a + 1")["status"] == "succeeded"


def test_artifact_bytes_quota(make_student) -> None:
    student = make_student({"artifact_bytes": 1000})
    sandbox_id = student.sandbox()
    context_id = student.context(sandbox_id)
    made = student.run(sandbox_id, context_id, "open('big.bin', 'wb').write(b'0' * 1500)")
    assert made["status"] == "succeeded"
    refused = student.http.post(
        f"/v1/sandboxes/{sandbox_id}/code/runs", json={"code": "1", "context_id": context_id}
    )
    _quota_error(refused, 429, "artifact_bytes")
    artifacts = student.http.get(f"/v1/sandboxes/{sandbox_id}/code/artifacts").json()["items"]
    student.http.delete(f"/v1/sandboxes/{sandbox_id}/code/artifacts/{artifacts[0]['id']}")
    assert student.run(sandbox_id, context_id, "1")["status"] == "succeeded"


def test_account_me_shows_quotas_and_usage(make_student) -> None:
    student = make_student({"contexts": 3})
    sandbox_id = student.sandbox()
    student.context(sandbox_id)
    me = student.http.get("/v1/account/me").json()
    assert me["name"] == student.name
    assert me["quotas"]["contexts"] == 3
    assert me["quotas"]["sandboxes"] == 2  # the server's default for students
    assert me["usage"]["sandboxes"] == 1
    assert me["usage"]["contexts"] == 1
    assert student.key not in str(me)


def test_requests_per_second_throttles_one_student_not_the_others(make_student) -> None:
    flooder, calm = make_student({"requests_per_second": 2}), make_student()
    answers = [flooder.http.get("/v1/sandboxes") for _ in range(40)]
    statuses = [answer.status_code for answer in answers]
    assert statuses[:4] == [200] * 4  # the burst allowance: twice the rate
    limited = [answer for answer in answers if answer.status_code == 429]
    assert limited
    error = limited[0].json()["error"]
    assert error["code"] == "rate_limit_exceeded"
    assert error["retryable"] is True
    assert "requests_per_second" in error["message"]
    assert int(limited[0].headers["retry-after"]) >= 1
    # the other student is not slowed down at all
    assert all(calm.http.get("/v1/sandboxes").status_code == 200 for _ in range(30))
