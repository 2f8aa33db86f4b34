"""Run watching against scripted servers (MockTransport), on a virtual clock.

The real server's side is tested in tests/server/test_watch_and_files.py; here the
client's detection, fallback and fault handling, which a real server does not show on
demand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox_magic.client import (
    AsyncSandboxClient,
    PollPolicy,
    RetryPolicy,
    Run,
    SandboxConnectionError,
    SandboxProtocolError,
    follow_run,
)
from sandbox_magic.wire import FEATURES_HEADER, ServerFeatures

pytestmark = pytest.mark.anyio

RUN_PATH = "/v1/sandboxes/sb_1/code/runs/run_1"
POLICY = PollPolicy(min_interval=0.02, max_interval=1.0, growth=1.5, max_outage=5.0)
ADVERTISED = {FEATURES_HEADER: "run-watch; max_wait_ms=25000, files; max_bytes=1000"}


def ndjson(*lines: tuple[int, dict[str, Any]]) -> httpx.Response:
    body = "".join(json.dumps({"version": v, "run": run}) + "\n" for v, run in lines)
    headers = {"content-type": "application/x-ndjson", **ADVERTISED}
    return httpx.Response(200, headers=headers, content=body.encode())


class WatchServer:
    """Answers each GET of run_1 with the next scripted response; records the queries."""

    def __init__(self, *script: httpx.Response | Exception) -> None:
        self.script = list(script)
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == RUN_PATH
        self.queries.append(dict(request.url.params))
        step = self.script.pop(0)
        if isinstance(step, httpx.TransportError):
            raise type(step)(str(step), request=request)
        assert isinstance(step, httpx.Response)
        return step


@pytest.fixture
def watching(
    make_client: Callable[..., AsyncSandboxClient],
) -> Callable[..., tuple[WatchServer, AsyncSandboxClient]]:
    def build(*script: Any) -> tuple[WatchServer, AsyncSandboxClient]:
        server = WatchServer(*script)
        client = make_client(server, retry=RetryPolicy(max_attempts=1))
        client._features = ServerFeatures.parse(ADVERTISED[FEATURES_HEADER])
        return server, client

    return build


async def follow(client: AsyncSandboxClient, fake_time: Any, **kwargs: Any) -> Run:
    kwargs.setdefault("policy", POLICY)
    kwargs.setdefault("deadline", None)
    return await follow_run(
        client, "sb_1", "run_1", sleep=fake_time.sleep, clock=fake_time.clock, **kwargs
    )


@pytest.mark.parametrize(
    ("value", "watch", "files"),
    [
        ("run-watch; max_wait_ms=25000, files; max_bytes=1073741824", 25000, 1073741824),
        ("files;max_bytes=10", None, 10),
        ("run-watch; max_wait_ms=soon, files", None, None),
        ("something-else; x=1", None, None),
        ("", None, None),
        (None, None, None),
        ("run-watch; max_wait_ms=99999999999999999999", None, None),
    ],
)
def test_features_are_read_leniently(
    value: str | None, watch: int | None, files: int | None
) -> None:
    features = ServerFeatures.parse(value)
    assert (features.watch_max_ms, features.files_max_bytes) == (watch, files)
    if watch is not None or files is not None:
        assert ServerFeatures.parse(features.header_value()) == features


async def test_the_client_learns_the_features_from_any_answer(
    make_client: Callable[..., AsyncSandboxClient], run_json: Callable[..., dict[str, Any]]
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=run_json(status="running"), headers=ADVERTISED)

    client = make_client(handler)
    assert client.features == ServerFeatures()  # nothing heard yet: the plain contract
    await client.get_run("sb_1", "run_1")
    assert client.features.can_watch
    assert client.features.files_max_bytes == 1000


async def test_one_watch_passes_on_every_change_and_ends_at_the_terminal_snapshot(
    watching: Callable[..., Any], fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = watching(
        ndjson(
            (1, run_json(status="running")),
            (2, run_json(status="running", stdout=["a\n"])),
            (3, run_json(status="running", stdout=["a\n", "b\n"])),
            (4, run_json(status="succeeded", stdout=["a\n", "b\n"])),
        )
    )
    seen: list[Run] = []
    final = await follow(client, fake_time, on_update=seen.append)
    assert final.status == "succeeded"
    assert [len(r.execution.logs.stdout) for r in seen] == [0, 1, 2, 2]
    assert len(server.queries) == 1
    assert server.queries[0]["watch_ms"] == "25000"
    assert "after_version" not in server.queries[0]
    assert fake_time.sleeps == []  # no polling pauses at all


async def test_a_watch_that_ends_early_is_asked_again_from_the_last_version(
    watching: Callable[..., Any], fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    running = run_json(status="running")
    server, client = watching(
        ndjson((5, running)),  # the wait passed: the server ended the answer
        ndjson((5, running), (6, run_json(status="failed"))),
    )
    seen: list[Run] = []
    final = await follow(client, fake_time, initial=Run.from_json(running), on_update=seen.append)
    assert final.status == "failed"
    assert [r.status for r in seen] == ["failed"]  # the unchanged snapshot is not repeated
    assert server.queries[1]["after_version"] == "5"


async def test_a_server_that_ignores_the_watch_is_polled_from_then_on(
    watching: Callable[..., Any], fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = watching(
        httpx.Response(200, json=run_json(status="running")),  # plain JSON: no watching
        httpx.Response(200, json=run_json(status="running")),
        httpx.Response(200, json=run_json(status="succeeded")),
    )
    final = await follow(client, fake_time)
    assert final.status == "succeeded"
    assert not client.features.can_watch
    assert "watch_ms" in server.queries[0]
    assert all("watch_ms" not in query for query in server.queries[1:])
    assert fake_time.sleeps  # adaptive polling took over


async def test_empty_answers_long_before_the_wait_are_not_hammered(
    watching: Callable[..., Any], fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    server, client = watching(
        ndjson(), ndjson(), ndjson(), ndjson((9, run_json(status="succeeded")))
    )
    final = await follow(client, fake_time)
    assert final.status == "succeeded"
    assert len(server.queries) == 4
    assert fake_time.sleeps == [0.02, 0.03, 0.045]  # backing off, as an unchanged poll does


async def test_a_broken_watch_is_retried_and_an_outage_ends_it_in_bounded_time(
    watching: Callable[..., Any], fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    _, client = watching(
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"error": "busy"}),
        ndjson((2, run_json(status="succeeded"))),
    )
    assert (await follow(client, fake_time)).status == "succeeded"
    assert len(fake_time.sleeps) == 2

    _, client = watching(*[httpx.ConnectError("refused")] * 200)
    with pytest.raises(SandboxConnectionError, match="run_1"):
        await follow(client, fake_time)
    assert sum(fake_time.sleeps) < POLICY.max_outage + 10


async def test_a_watch_cut_mid_line_is_asked_again_from_the_last_version(
    watching: Callable[..., Any], fake_time: Any, run_json: Callable[..., dict[str, Any]]
) -> None:
    whole = ndjson((3, run_json(status="running", stdout=["a\n"])))
    cut = whole.content + b'{"version": 4, "run": {"id": "ru'
    headers = {"content-type": "application/x-ndjson", **ADVERTISED}
    server, client = watching(
        httpx.Response(200, headers=headers, content=cut),
        ndjson((5, run_json(status="succeeded", stdout=["a\n"]))),
    )
    seen: list[Run] = []
    final = await follow(client, fake_time, on_update=seen.append)
    assert final.status == "succeeded"
    assert [r.status for r in seen] == ["running", "succeeded"]
    assert server.queries[1]["after_version"] == "3"


async def test_a_garbled_watch_line_is_a_clear_protocol_error(
    watching: Callable[..., Any], fake_time: Any
) -> None:
    headers = {"content-type": "application/x-ndjson", **ADVERTISED}
    _, client = watching(httpx.Response(200, headers=headers, content=b'{"run": 1}\n'))
    with pytest.raises(SandboxProtocolError, match="versioned snapshot"):
        await follow(client, fake_time)


async def test_watches_leave_half_the_connections_to_other_requests(
    make_client: Callable[..., AsyncSandboxClient],
    fake_time: Any,
    run_json: Callable[..., dict[str, Any]],
) -> None:
    server = WatchServer(
        httpx.Response(200, json=run_json(status="running"), headers=ADVERTISED),
        httpx.Response(200, json=run_json(status="succeeded"), headers=ADVERTISED),
    )
    client = make_client(server, retry=RetryPolicy(max_attempts=1), max_connections=4)
    client._features = ServerFeatures.parse(ADVERTISED[FEATURES_HEADER])
    with client.watch_slot() as first, client.watch_slot() as second:
        assert (first, second) == (True, True)
        with client.watch_slot() as third:
            assert third is False
        # Every slot taken: this run is polled, though the server could watch it.
        final = await follow(client, fake_time)
    assert final.status == "succeeded"
    assert all("watch_ms" not in query for query in server.queries)
    with client.watch_slot() as again:
        assert again is True  # slots come back


class _BreaksAfter(httpx.AsyncByteStream):
    """A response body that sends ``first`` and then loses the connection."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    async def __aiter__(self) -> Any:
        if self.first:
            yield self.first
        raise httpx.ReadError("connection lost")


def _held_submit_server(body: bytes, seen: list[httpx.Request]) -> Callable[..., Any]:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.url.path == "/v1/sandboxes/sb_1/code/runs"
        headers = {"content-type": "application/x-ndjson", **ADVERTISED}
        return httpx.Response(202, headers=headers, stream=_BreaksAfter(body))

    return answer


async def test_a_held_submit_cut_off_after_the_created_run_still_gives_that_run(
    make_client: Callable[..., AsyncSandboxClient], run_json: Callable[..., dict[str, Any]]
) -> None:
    seen: list[httpx.Request] = []
    created = json.dumps({"version": 1, "run": run_json(status="queued")}).encode() + b"\n"
    client = make_client(_held_submit_server(created, seen), retry=RetryPolicy(max_attempts=3))
    run = await client.create_run("sb_1", code="1", context_id="ctx_1", settle=0.25)
    assert (run.id, run.status) == ("run_1", "queued")
    assert len(seen) == 1  # the run exists: not submitted again
    assert seen[0].url.params["wait_ms"] == "250"
    assert "application/x-ndjson" in seen[0].headers["accept"]


async def test_a_held_submit_cut_off_before_the_run_is_known_is_retried_with_its_key(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    seen: list[httpx.Request] = []
    client = make_client(_held_submit_server(b"", seen), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(SandboxConnectionError, match="connection"):
        await client.create_run("sb_1", code="1", context_id="ctx_1", settle=0.25)
    assert len(seen) == 3
    assert len({request.headers["idempotency-key"] for request in seen}) == 1
