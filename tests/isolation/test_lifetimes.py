"""Lifetimes and capacity of confined sandboxes: timeouts, idle reaping, leftovers, limits."""

from __future__ import annotations

import resource
import shutil
import time
from collections.abc import Callable
from typing import Any

import httpx
import psutil
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None, reason="needs bubblewrap (scripts/test.sh installs it)"
)


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def _execute(client: httpx.Client, sandbox: str, code: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1/sandboxes/{sandbox}/code/execute", json={"code": code, **body})


def _sleepers(marker: str) -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
    ]


BACKGROUND = (
    "import subprocess\n"
    "subprocess.Popen(['sleep', 'MARKER'], start_new_session=True,"
    " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
)


def test_timeout_ms_stops_the_sandbox_and_keeps_its_runs_readable(confined_server: Any) -> None:
    with confined_server.client() as client:
        created = client.post("/v1/sandboxes", json={"timeout_ms": 10_000}).json()
        sandbox = created["id"]
        assert created["expires_at"]
        context = client.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={}).json()["id"]
        run = client.post(
            f"/v1/sandboxes/{sandbox}/code/runs",
            json={
                "code": "import time; print('started', flush=True); time.sleep(60)",
                "context_id": context,
            },
        ).json()

        def ended() -> httpx.Response | None:
            response = client.get(f"/v1/sandboxes/{sandbox}")
            return response if response.status_code == 404 else None

        gone = _wait(ended, 30, "the sandbox to expire")
        assert "expired" in gone.json()["error"]["message"]
        assert "timeout_ms" in gone.json()["error"]["message"]
        stored = client.get(f"/v1/sandboxes/{sandbox}/code/runs/{run['id']}").json()
        assert stored["status"] == "cancelled"
        assert stored["execution"]["logs"]["stdout"] == ["started\n"]


def test_an_idle_sandbox_is_reaped_and_runs_count_as_activity(confined_server: Any) -> None:
    with confined_server.client() as client:
        sandbox = client.post("/v1/sandboxes", json={"inactivity_timeout_ms": 2500}).json()["id"]
        # A run longer than the idle time is activity: the sandbox survives it.
        done = _execute(client, sandbox, "import time; time.sleep(4); print('done')")
        assert done.status_code == 200
        assert "done" in done.text
        assert client.get(f"/v1/sandboxes/{sandbox}").status_code == 200
        # Reads are not activity.
        gone = _wait(
            lambda: client.get(f"/v1/sandboxes/{sandbox}").status_code == 404,
            30,
            "the idle sandbox to be reaped",
        )
        assert gone
        message = client.get(f"/v1/sandboxes/{sandbox}").json()["error"]["message"]
        assert "idle" in message


def test_the_end_of_a_run_kills_what_it_left_running_unless_asked(confined_server: Any) -> None:
    with confined_server.client() as client:
        sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
        try:
            # Another context of the same sandbox (same uid, its own kernel) is no stray.
            other = client.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={}).json()["id"]
            assert _execute(client, sandbox, "x = 'other'", context_id=other).status_code == 200
            stray = f"{6100 + time.time_ns() % 1000}.5"
            assert _execute(client, sandbox, BACKGROUND.replace("MARKER", stray)).status_code == 200
            assert _wait(lambda: not _sleepers(stray), 10, "the stray process to be killed")
            assert "other" in _execute(client, sandbox, "print(x)", context_id=other).text
            kept = f"{6200 + time.time_ns() % 1000}.5"
            response = _execute(
                client, sandbox, BACKGROUND.replace("MARKER", kept), keep_processes=True
            )
            assert response.status_code == 200
            assert _sleepers(kept), "keep_processes did not keep the process"
        finally:
            client.delete(f"/v1/sandboxes/{sandbox}")
        assert _wait(lambda: not _sleepers(kept), 20, "the kept process to die with its sandbox")


def test_full_server_answers_503_with_retry_after_and_keeps_serving(server_factory: Any) -> None:
    server = server_factory(None, None, "--isolation", "bwrap", "--server-max-contexts", "2")
    with server.client() as client:
        sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
        contexts = [
            client.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={}) for _ in range(3)
        ]
        assert [r.status_code for r in contexts] == [201, 201, 503]
        full = contexts[2]
        assert full.json()["error"]["code"] == "capacity_exceeded"
        assert full.json()["error"]["retryable"] is True
        assert int(full.headers["Retry-After"]) > 0
        first = contexts[0].json()["id"]
        run = _execute(client, sandbox, "print(6 * 7)", context_id=first)
        assert "42" in run.text
        client.delete(f"/v1/sandboxes/{sandbox}/code/contexts/{first}")
        again = client.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={})
        assert again.status_code == 201


def test_a_low_open_files_limit_does_not_bring_the_server_down(server_factory: Any) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.skip("the hard open-files limit is too low to show the server raising its own")
    # The server starts with a soft limit of 64: far too few for 6 kernels.
    server = server_factory(
        None,
        None,
        "--isolation",
        "bwrap",
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard)),
    )
    assert psutil.Process(server.process.pid).rlimit(psutil.RLIMIT_NOFILE)[0] > 64
    with server.client() as client:
        sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
        made = [
            client.post(f"/v1/sandboxes/{sandbox}/code/contexts", json={}).json()["id"]
            for _ in range(6)
        ]
        for context in made:
            assert "ok" in _execute(client, sandbox, "print('ok')", context_id=context).text
        # A sandbox's own code running out of descriptors harms only itself.
        exhaust = _execute(
            client,
            sandbox,
            "fs = []\ntry:\n    while True: fs.append(open('/dev/null'))\nexcept OSError as e:\n"
            "    print('refused', len(fs))",
            context_id=made[0],
        )
        assert "refused" in exhaust.text
    assert server.process.poll() is None


def test_a_server_killed_outright_leaves_a_runtime_dir_that_the_next_start_removes(
    server_factory: Any,
) -> None:
    import signal
    import tempfile
    from pathlib import Path

    server = server_factory(None, None, "--isolation", "bwrap")
    with server.client() as client:
        sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
        assert "2" in _execute(client, sandbox, "print(1 + 1)").text
    owned = [
        path
        for path in Path(tempfile.gettempdir()).glob("sbm-*")
        if (path / "owner.pid").is_file()
        and (path / "owner.pid").read_text().strip() == str(server.process.pid)
    ]
    assert len(owned) == 1
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)
    assert owned[0].exists()  # nobody could clean up
    server_factory(None, None, "--isolation", "bwrap")
    assert not owned[0].exists()


def test_one_sandbox_running_out_of_memory_leaves_the_others_alone(
    confined_server: Any,
) -> None:
    with confined_server.client() as client:
        calm = client.post("/v1/sandboxes", json={}).json()["id"]
        greedy = client.post("/v1/sandboxes", json={"memory_mb": 200}).json()["id"]
        try:
            assert _execute(client, calm, "kept = 'ok'").status_code == 200
            hog = _execute(client, greedy, "hogs = [bytearray(50 * 2**20) for _ in range(20)]")
            assert "MemoryError" in hog.text
            runs = client.get(f"/v1/sandboxes/{greedy}/code/runs").json()
            items = runs["items"] if isinstance(runs, dict) else runs
            assert "out of memory: limit 200 MB" in items[0]["failure_reason"]
            assert "ok" in _execute(client, calm, "print(kept)").text
        finally:
            client.delete(f"/v1/sandboxes/{calm}")
            client.delete(f"/v1/sandboxes/{greedy}")


BURNER = """
import threading
counter = [0]
def burn():
    while True:
        counter[0] += 1
burner = threading.Thread(target=burn, daemon=True)
burner.start()
"""


def test_the_end_of_a_run_stops_threads_it_left_unless_asked(confined_server: Any) -> None:
    with confined_server.client() as client:
        sandbox = client.post("/v1/sandboxes", json={}).json()["id"]
        try:
            assert _execute(client, sandbox, BURNER).status_code == 200
            stopped = _execute(client, sandbox, "burner.join(10); print(burner.is_alive())")
            assert "False" in stopped.text
            assert _execute(client, sandbox, BURNER, keep_processes=True).status_code == 200
            kept = _execute(
                client,
                sandbox,
                "import time; c = counter[0]; time.sleep(0.2); "
                "print(burner.is_alive(), counter[0] > c)",
            )
            assert "True True" in kept.text
        finally:
            client.delete(f"/v1/sandboxes/{sandbox}")
