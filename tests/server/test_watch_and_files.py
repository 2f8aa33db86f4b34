"""The server's own extras: the advertised features, run watching and raw file endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox_magic.wire import FEATURES_HEADER, ServerFeatures

TERMINAL = {"succeeded", "failed", "cancelled"}


def _watch(
    api: httpx.Client, path: str, **params: Any
) -> tuple[httpx.Response, list[tuple[float, dict[str, Any]]]]:
    """Every line of one watch response, with the time it arrived."""
    lines: list[tuple[float, dict[str, Any]]] = []
    with api.stream("GET", path, params=params) as response:
        if response.status_code == 200:
            for line in response.iter_lines():
                if line.strip():
                    lines.append((time.monotonic(), json.loads(line)))
        else:
            response.read()
    return response, lines


def test_every_v1_answer_advertises_the_features(sbx) -> None:
    response = sbx.api.get(sbx.base)
    features = ServerFeatures.parse(response.headers[FEATURES_HEADER])
    assert features.watch_max_ms == 25_000
    assert features.files_max_bytes == 1024**3
    missing = sbx.api.get(f"{sbx.base}/code/runs/run_nope")
    assert missing.status_code == 404
    assert FEATURES_HEADER in missing.headers


def test_one_watch_carries_every_change_of_a_run(sbx) -> None:
    ctx = sbx.context()
    code = (
        "import time\nprint('a', flush=True)\ntime.sleep(1)\n"
        "print('b', flush=True)\ntime.sleep(0.5)"
    )
    run = sbx.submit(code, ctx)
    response, lines = _watch(sbx.api, f"{sbx.base}/code/runs/{run['id']}", watch_ms=20_000)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    runs = [line["run"] for _, line in lines]
    versions = [line["version"] for _, line in lines]
    assert versions == sorted(set(versions))  # each line newer than the last
    assert runs[-1]["status"] == "succeeded"
    assert all(r["status"] not in TERMINAL for r in runs[:-1])
    stdout_counts = [len(r["execution"]["logs"]["stdout"]) for r in runs]
    assert {1, 2} <= set(stdout_counts)  # each print came as it happened
    first_b = next(t for t, line in lines if len(line["run"]["execution"]["logs"]["stdout"]) == 2)
    assert lines[-1][0] - first_b >= 0.3  # 'b' was passed on before the run ended


def test_a_watch_of_an_unchanged_run_ends_after_its_wait(sbx) -> None:
    ctx = sbx.context()
    run = sbx.submit("import time\ntime.sleep(3)", ctx)
    path = f"{sbx.base}/code/runs/{run['id']}"
    _, first = _watch(sbx.api, path, watch_ms=20_000)
    # The first answer ends only when the run ends, or at 20 s: take its last version.
    assert first[-1][1]["run"]["status"] == "succeeded"
    _, again = _watch(sbx.api, path, watch_ms=5_000, after_version=first[-1][1]["version"])
    assert [line["run"]["status"] for _, line in again] == ["succeeded"]  # ended: at once

    run = sbx.submit("import time\ntime.sleep(2)", ctx)
    path = f"{sbx.base}/code/runs/{run['id']}"
    started = time.monotonic()
    _, lines = _watch(sbx.api, path, watch_ms=300, after_version=10**9)
    assert lines == []  # nothing newer than the version given
    assert 0.25 <= time.monotonic() - started < 1.5


def test_a_submit_may_wait_until_its_run_ends_or_shows_output(sbx) -> None:
    ctx = sbx.context()
    runs = f"{sbx.base}/code/runs"

    def submit(code: str, wait_ms: int) -> tuple[dict[str, Any], float]:
        started = time.monotonic()
        response = sbx.api.post(
            runs, params={"wait_ms": wait_ms}, json={"code": code, "context_id": ctx}
        )
        assert response.status_code == 202, response.text
        return response.json(), time.monotonic() - started

    short, _ = submit("1+1", 20_000)
    assert short["status"] == "succeeded"  # the whole trivial run in one answer
    assert short["execution"]["results"][0]["text"] == "2"
    printing, took = submit("print('hi', flush=True)\nimport time\ntime.sleep(3)", 20_000)
    assert printing["status"] == "running"
    assert printing["execution"]["logs"]["stdout"] == ["hi\n"]
    assert took < 2.5  # answered at the first output, not at the end
    silent, took = submit("import time\ntime.sleep(2)", 300)
    assert silent["status"] in ("queued", "running")
    assert took < 1.8
    bad = sbx.api.post(runs, params={"wait_ms": -1}, json={"code": "1", "context_id": ctx})
    assert bad.status_code == 400


def test_a_held_submit_tells_the_run_at_once_to_a_client_that_takes_ndjson(sbx) -> None:
    ctx = sbx.context()
    runs = f"{sbx.base}/code/runs"
    body = {"code": "import time\ntime.sleep(1.5)\n'done'", "context_id": ctx}
    lines: list[tuple[float, dict[str, Any]]] = []
    started = time.monotonic()
    with sbx.api.stream(
        "POST",
        runs,
        params={"wait_ms": 20_000},
        json=body,
        headers={"Accept": "application/x-ndjson, application/json"},
    ) as response:
        assert response.status_code == 202
        assert response.headers["content-type"].startswith("application/x-ndjson")
        for line in response.iter_lines():
            if line.strip():
                lines.append((time.monotonic() - started, json.loads(line)))
    created, settled = (line for _, line in lines)
    assert created["run"]["status"] in ("queued", "running")
    assert lines[0][0] < 1.0  # the run's id came before the run ended
    assert settled["run"]["id"] == created["run"]["id"]
    assert settled["run"]["status"] == "succeeded"
    assert settled["version"] > created["version"]
    quick = sbx.api.post(
        runs,
        params={"wait_ms": 20_000},
        json={"code": "1+1", "context_id": ctx},
        headers={"Accept": "application/x-ndjson"},
    )
    statuses = [json.loads(line)["run"]["status"] for line in quick.text.splitlines()]
    assert statuses[-1] == "succeeded"
    assert len(statuses) <= 2


def test_a_held_submit_waits_out_the_kernels_end_once_the_result_has_come(sbx) -> None:
    """After ``Out`` or an error only the kernel's own end is left (post-run hooks, the
    idle): a held answer waits for it rather than answering "running" 50 ms later."""
    ctx = sbx.context()
    hook = "import time\nget_ipython().events.register('post_run_cell', lambda _: time.sleep(0.3))"
    assert sbx.run(hook, ctx)["status"] == "succeeded"
    for code, status in (("1+1", "succeeded"), ("1/0", "failed")):
        answer = sbx.api.post(
            f"{sbx.base}/code/runs",
            params={"wait_ms": 5_000},
            json={"code": code, "context_id": ctx},
            headers={"Accept": "application/x-ndjson"},
        )
        lines = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
        assert lines[-1]["run"]["status"] == status, (code, lines[-1]["run"]["status"])
        assert len(lines) == 2  # the run as made, then the run ended


def test_watch_refuses_bad_requests(sbx) -> None:
    ctx = sbx.context()
    run = sbx.run("1", ctx)
    path = f"{sbx.base}/code/runs/{run['id']}"
    assert sbx.api.get(path, params={"watch_ms": 26_000}).status_code == 400
    assert sbx.api.get(path, params={"watch_ms": "soon"}).status_code == 400
    missing = sbx.api.get(f"{sbx.base}/code/runs/run_0000", params={"watch_ms": 1000})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


# -- files -------------------------------------------------------------------------


@pytest.fixture
def payload() -> bytes:
    return bytes(range(256)) * 4096 + b"end"


def test_a_file_put_is_what_the_kernel_reads_and_back(sbx, payload: bytes) -> None:
    put = sbx.api.put(
        f"{sbx.base}/file", params={"path": "/workspace/in/data.bin"}, content=payload
    )
    assert put.status_code == 204, put.text
    ctx = sbx.context()
    run = sbx.run(
        "import hashlib\n"
        "data = open('in/data.bin', 'rb').read()\n"
        "open('out.bin', 'wb').write(data[::-1])\n"
        "print(len(data), hashlib.sha256(data).hexdigest())",
        ctx,
    )
    import hashlib

    assert run["execution"]["logs"]["stdout"] == [
        f"{len(payload)} {hashlib.sha256(payload).hexdigest()}\n"
    ]
    got = sbx.api.get(f"{sbx.base}/file", params={"path": "/workspace/out.bin"})
    assert got.status_code == 200
    assert got.content == payload[::-1]
    assert got.headers["content-length"] == str(len(payload))
    # The kernel's own absolute path names the same file.
    cwd = sbx.api.get(f"{sbx.base}/code/contexts").json()[0]["cwd"]
    same = sbx.api.get(f"{sbx.base}/file", params={"path": f"{cwd}/out.bin"})
    assert same.content == got.content


def test_file_paths_stay_inside_the_sandbox(sbx) -> None:
    ctx = sbx.context()
    sbx.run(
        "import os\nos.symlink('/etc', 'etc_link')\nos.symlink('/etc/hostname', 'host_link')",
        ctx,
    )

    def get(path: str) -> httpx.Response:
        return sbx.api.get(f"{sbx.base}/file", params={"path": path})

    def put(path: str) -> httpx.Response:
        return sbx.api.put(f"{sbx.base}/file", params={"path": path}, content=b"x")

    for path in (
        "../x",
        "/workspace/../../x",
        "/workspace/etc_link/passwd",
        "/workspace/host_link",
    ):
        assert get(path).status_code == 400, path
    for path in ("../x", "/workspace/etc_link/evil", "/workspace/host_link", ""):
        assert put(path).status_code == 400, path
    assert get("/etc/hostname").status_code == 404  # the sandbox's /etc, not the host's
    assert get("/workspace").status_code == 400  # a directory
    assert put("/workspace").status_code == 400
    assert sbx.api.get(f"{sbx.base}/file").status_code == 400  # no path at all
    assert get("/workspace/nothing-here").json()["error"]["code"] == "not_found"
    other = sbx.api.get("/v1/sandboxes/sb_nope/file", params={"path": "/workspace/x"})
    assert other.status_code == 404


def test_files_over_the_limit_are_refused_and_leave_nothing(server_factory) -> None:
    server = server_factory(None, None, "--max-file-bytes", "1000")
    with server.client() as api:
        sandbox = api.post("/v1/sandboxes", json={}).json()["id"]
        url = f"/v1/sandboxes/{sandbox}/file"
        advertised = ServerFeatures.parse(
            api.get(f"/v1/sandboxes/{sandbox}").headers[FEATURES_HEADER]
        )
        assert advertised.files_max_bytes == 1000
        assert api.put(url, params={"path": "a.bin"}, content=b"x" * 1000).status_code == 204

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
            for _ in range(10):
                yield b"y" * 300

        too_big = api.put(url, params={"path": "b.bin"}, content=b"x" * 1001)
        assert too_big.status_code == 413
        streamed = api.put(url, params={"path": "c.bin"}, content=chunks())
        assert streamed.status_code == 413
        for name in ("b.bin", "c.bin"):
            assert api.get(url, params={"path": name}).status_code == 404
        root = server.state_dir / "sandboxes" / sandbox
        assert sorted(p.name for p in root.iterdir() if p.is_file()) == ["a.bin"]


def test_flags_turn_the_extras_off(server_factory) -> None:
    server = server_factory(None, None, "--no-long-poll", "--no-file-endpoints")
    with server.client() as api:
        sandbox = api.post("/v1/sandboxes", json={})
        assert FEATURES_HEADER not in sandbox.headers
        base = f"/v1/sandboxes/{sandbox.json()['id']}"
        ctx = api.post(f"{base}/code/contexts", json={}).json()["id"]
        run = api.post(
            f"{base}/code/runs", json={"code": "import time; time.sleep(2)", "context_id": ctx}
        )
        path = f"{base}/code/runs/{run.json()['id']}"
        held = api.post(
            f"{base}/code/runs",
            params={"wait_ms": 5000},
            json={"code": "import time; time.sleep(1)", "context_id": ctx},
        )
        assert held.json()["status"] == "queued"  # answered at once: nothing held
        for params in ({"watch_ms": 5000}, {"wait_ms": 5000}):
            started = time.monotonic()
            answer = api.get(path, params=params)
            assert time.monotonic() - started < 1.5  # answered at once, like the hosted API
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["status"] in ("queued", "running")
        assert api.put(f"{base}/file", params={"path": "a"}, content=b"x").status_code == 404
        assert api.get(f"{base}/file", params={"path": "a"}).status_code == 404
