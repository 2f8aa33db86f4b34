"""Runs over time: state, isolation, partial output, timeouts, cancel, parallelism."""

from __future__ import annotations


def test_state_persists_in_a_context_and_is_isolated_between_contexts(sbx) -> None:
    first, second = sbx.context(), sbx.context()
    assert sbx.run("secret = 41", first)["status"] == "succeeded"
    assert sbx.run("secret + 1", first)["execution"]["results"][0]["text"] == "42"
    other = sbx.run("secret", second)
    assert other["status"] == "failed"
    assert other["execution"]["error"]["name"] == "NameError"


def test_running_run_shows_partial_output(sbx, wait_until) -> None:
    ctx = sbx.context()
    code = "import time\nprint('early', flush=True)\ntime.sleep(30)\nprint('late')"
    run = sbx.submit(code, ctx, timeout=60)

    def partial():
        current = sbx.get(run["id"])
        logs = current["execution"]["logs"]["stdout"]
        return current if current["status"] == "running" and logs else None

    current = wait_until(partial, timeout=30, what="partial stdout")
    assert current["execution"]["logs"]["stdout"] == ["early\n"]
    assert current["execution"]["output_order"] == [{"type": "stdout", "index": 0}]
    assert current["started_at"] is not None
    assert current["completed_at"] is None
    cancelled = sbx.api.post(f"{sbx.base}/code/runs/{run['id']}/cancel")
    assert cancelled.status_code in (200, 202)
    final = sbx.wait(run["id"])
    assert final["status"] == "cancelled"
    assert final["cancel_requested_at"] is not None
    assert final["execution"]["logs"]["stdout"] == ["early\n"]


def test_cancel_running_keeps_the_context_and_its_variables(sbx, wait_until) -> None:
    ctx = sbx.context()
    sbx.run("kept = 'still here'", ctx)
    run = sbx.submit("import time\ntime.sleep(60)", ctx)
    wait_until(lambda: sbx.get(run["id"])["status"] == "running", what="running")
    sbx.api.post(f"{sbx.base}/code/runs/{run['id']}/cancel")
    final = sbx.wait(run["id"], timeout=20)
    assert final["status"] == "cancelled"
    assert final["failure_reason"] == "cancelled by request"
    assert final["failure_code"] == "cancelled"
    assert sbx.run("kept", ctx)["execution"]["results"][0]["text"] == "'still here'"


def test_cancel_queued_run_ends_it_at_once_and_never_runs_it(sbx) -> None:
    ctx = sbx.context()
    blocker = sbx.submit("import time\ntime.sleep(60)", ctx)
    queued = sbx.submit("ran = True", ctx)
    assert sbx.get(queued["id"])["status"] == "queued"
    response = sbx.api.post(f"{sbx.base}/code/runs/{queued['id']}/cancel")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert response.json()["started_at"] is None
    sbx.api.post(f"{sbx.base}/code/runs/{blocker['id']}/cancel")
    sbx.wait(blocker["id"])
    assert sbx.run("'ran' in globals()", ctx)["execution"]["results"][0]["text"] == "False"


def test_runs_of_a_context_run_in_submission_order(sbx) -> None:
    ctx = sbx.context()
    ids = [sbx.submit(f"order = globals().get('order', []) + [{i}]", ctx)["id"] for i in range(5)]
    for run_id in ids:
        assert sbx.wait(run_id)["status"] == "succeeded"
    assert sbx.run("order", ctx)["execution"]["results"][0]["text"] == "[0, 1, 2, 3, 4]"


def test_contexts_run_in_parallel(sbx) -> None:
    first, second = sbx.context(), sbx.context()
    runs = [sbx.submit("import time\ntime.sleep(1)", ctx) for ctx in (first, second)]
    a, b = (sbx.wait(run["id"]) for run in runs)
    assert a["status"] == b["status"] == "succeeded"
    # They overlapped: each started before the other completed.
    assert b["started_at"] < a["completed_at"]
    assert a["started_at"] < b["completed_at"]


def test_timeout_interrupts_and_keeps_variables(sbx) -> None:
    ctx = sbx.context()
    sbx.run("kept = 7", ctx)
    run = sbx.run("import time\ntime.sleep(60)", ctx, timeout=1)
    assert run["status"] == "failed"
    assert run["failure_reason"] == "timed out after 1 s"
    assert run["failure_code"] == "timed_out"
    assert run["timeout_secs"] == 1
    # The interrupt shows as KeyboardInterrupt when it lands inside the code; on a busy
    # machine it can land before the code starts, and the kernel then aborts the request
    # without an error. Either way the run failed for its timeout and kept the context.
    error = run["execution"].get("error")
    assert error is None or error["name"] == "KeyboardInterrupt"
    assert sbx.run("kept", ctx)["execution"]["results"][0]["text"] == "7"


def test_timeout_restarts_a_kernel_that_ignores_the_interrupt(sbx) -> None:
    ctx = sbx.context()
    sbx.run("lost = 1", ctx)
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
    run = sbx.run(code, ctx, timeout=1)
    assert run["status"] == "failed"
    assert run["failure_reason"].startswith("timed out after 1 s; the kernel did not stop")
    assert run["failure_code"] == "timed_out"
    after = sbx.run("'lost' in globals()", ctx)
    assert after["status"] == "succeeded"
    assert after["execution"]["results"][0]["text"] == "False"


def test_kernel_death_fails_the_run_and_the_context_recovers(sbx) -> None:
    ctx = sbx.context()
    run = sbx.run("import os\nos._exit(3)", ctx)
    assert run["status"] == "failed"
    assert "kernel died" in run["failure_reason"]
    assert run["failure_code"] == "kernel_died"
    assert sbx.run("1 + 1", ctx)["execution"]["results"][0]["text"] == "2"


def test_interrupt_and_restart_routes(sbx, wait_until) -> None:
    ctx = sbx.context()
    sbx.run("x = 1", ctx)
    run = sbx.submit("import time\ntime.sleep(60)", ctx)
    wait_until(lambda: sbx.get(run["id"])["status"] == "running", what="running")
    response = sbx.api.post(f"{sbx.base}/code/contexts/{ctx}/interrupt")
    assert response.status_code == 200
    final = sbx.wait(run["id"])
    assert final["status"] == "cancelled"
    assert final["failure_reason"] == "the context was interrupted"
    assert sbx.run("x", ctx)["execution"]["results"][0]["text"] == "1"

    response = sbx.api.post(f"{sbx.base}/code/contexts/{ctx}/restart")
    assert response.status_code == 200
    assert response.json()["id"] == ctx
    after = sbx.run("import os\nprint('x' in globals(), os.path.basename(os.getcwd()))", ctx)
    assert after["execution"]["logs"]["stdout"] == ["False workspace\n"]


def test_restart_while_running_cancels_the_running_run(sbx, wait_until) -> None:
    ctx = sbx.context()
    run = sbx.submit("import time\ntime.sleep(60)", ctx)
    wait_until(lambda: sbx.get(run["id"])["status"] == "running", what="running")
    assert sbx.api.post(f"{sbx.base}/code/contexts/{ctx}/restart").status_code == 200
    final = sbx.wait(run["id"])
    assert final["status"] == "cancelled"
    assert final["failure_reason"] == "the context was restarted"
    assert sbx.run("2 + 2", ctx)["execution"]["results"][0]["text"] == "4"
