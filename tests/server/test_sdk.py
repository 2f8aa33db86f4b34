"""The service's own SDK (nullspace-sdk 0.1.9), unchanged, against the local server."""

from __future__ import annotations

import hashlib

import pytest

nullspace = pytest.importorskip("nullspace")


def test_sdk_code_interpreter_surface(live_server) -> None:
    from nullspace import Sandbox

    sandbox = Sandbox.create(
        template="code-interpreter", api_key=live_server.token, base_url=live_server.url
    )
    killed = False
    try:
        assert sandbox.id.startswith("sb_")
        assert sandbox._info.config.vcpus >= 1

        execution = sandbox.run_code("import sys\nprint('hi')\nprint('e', file=sys.stderr)\n21 * 2")
        assert execution.logs.stdout == ["hi\n"]
        assert execution.logs.stderr == ["e\n"]
        assert execution.results[0].text == "42"
        assert execution.results[0].is_main_result is True
        assert execution.execution_count == 1
        failed = sandbox.run_code("1/0")
        assert failed.error is not None
        assert failed.error.name == "ZeroDivisionError"

        interpreter = sandbox.code_interpreter
        context = interpreter.create_code_context(language="python")
        assert context.language == "python"
        assert context.id in {c.id for c in interpreter.list_code_contexts()}

        run = interpreter.create_run(
            "import os\nopen('sdk.txt', 'w').write(os.environ['SDK_VAR'])\n'ok'",
            context=context,
            envs={"SDK_VAR": "value"},
            timeout=30,
        )
        assert run.status in {"queued", "running", "succeeded"}
        assert interpreter.get_run(run.id).id == run.id
        finished = interpreter.wait_for_run(run.id, poll_interval=0.05, timeout_secs=60)
        assert finished.status == "succeeded"
        assert finished.timeout_secs == 30
        assert finished.execution is not None
        assert finished.execution.results[0].text == "'ok'"

        slow = interpreter.create_run("import time\ntime.sleep(60)", context=context)
        cancelled = interpreter.cancel_run(slow.id)
        assert cancelled.id == slow.id
        assert interpreter.wait_for_run(slow.id, poll_interval=0.05).status == "cancelled"

        listing = interpreter.list_runs(context_id=context.id, limit=1)
        assert [r.id for r in listing["items"]] == [slow.id]
        assert listing["next_cursor"]
        rest = interpreter.list_runs(context_id=context.id, cursor=listing["next_cursor"])
        assert [r.id for r in rest["items"]] == [run.id]
        assert [r.id for r in interpreter.list_runs(status="cancelled")["items"]] == [slow.id]

        artifacts = interpreter.list_artifacts(context_id=context.id)["items"]
        [artifact] = artifacts
        assert artifact["name"] == "sdk.txt"
        content = interpreter.download_artifact(artifact["id"])
        assert content == b"value"
        assert hashlib.sha256(content).hexdigest() == artifact["sha256"]

        sandbox.kill()
        killed = True
        with live_server.client() as client:
            assert client.get(f"/v1/sandboxes/{sandbox.id}").status_code == 404
    finally:
        if not killed:
            sandbox.kill()
