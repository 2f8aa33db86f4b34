"""The client speaks both API generations: it probes once, then spells every path right."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._errors import (
    AuthenticationError,
    QuotaExceededError,
    SandboxAPIError,
    ServerError,
)
from sandbox_magic.client._generation import ServerFactsBook, runs_unavailable
from sandbox_magic.client._poller import PollPolicy, poll_run, run_deadline
from tests.conftest import LiveServer, start_server

pytestmark = pytest.mark.anyio

RUN = {"id": "run_1", "machine_id": "mch_1", "context_id": "ctx_1", "status": "queued"}


def _recording(answers: dict[str, httpx.Response]) -> tuple[list[str], Callable[..., Any]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        for prefix, response in answers.items():
            if f"{request.method} {request.url.path}".startswith(prefix):
                return response
        return httpx.Response(404, json={"error": "no route", "code": "not_found"})

    return seen, handler


async def test_a_1x_server_is_probed_once_and_spoken_to_under_machines(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    seen, handler = _recording(
        {
            "GET /v1/machines/mch_1/code/runs/run_1": httpx.Response(200, json=RUN),
            "GET /v1/machines": httpx.Response(
                200, json={"items": [], "has_next": False, "next_token": None}
            ),
        }
    )
    async with make_client(handler, api_generation="auto") as client:
        first = await client.get_run("mch_1", "run_1")
        await client.get_run("mch_1", "run_1")
    assert first.sandbox_id == "mch_1"  # read from machine_id
    assert seen == [
        "GET /v1/machines",
        "GET /v1/machines/mch_1/code/runs/run_1",
        "GET /v1/machines/mch_1/code/runs/run_1",
    ]
    assert client.facts.generation == "1"


async def test_a_404_on_the_probe_means_0x(make_client: Callable[..., AsyncSandboxClient]) -> None:
    seen, handler = _recording(
        {"GET /v1/sandboxes/sb_1/code/runs/run_1": httpx.Response(200, json=RUN)}
    )
    async with make_client(handler, api_generation="auto") as client:
        await client.get_run("sb_1", "run_1")
    assert seen == ["GET /v1/machines", "GET /v1/sandboxes/sb_1/code/runs/run_1"]


async def test_the_probe_reports_a_wrong_key_instead_of_guessing(
    make_client: Callable[..., AsyncSandboxClient], secret: str
) -> None:
    _, handler = _recording({"GET": httpx.Response(401, json={"error": "bad key"})})
    async with make_client(handler, api_generation="auto") as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.get_run("sb_1", "run_1")
    assert client.facts.generation is None  # not remembered: the next call probes again
    assert secret not in str(caught.value)


async def test_a_forced_generation_is_never_probed(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    seen, handler = _recording({"GET /v1/machines/m/code/runs/r": httpx.Response(200, json=RUN)})
    async with make_client(handler, api_generation="1") as client:
        await client.get_run("m", "r")
    assert seen == ["GET /v1/machines/m/code/runs/r"]
    assert "forced" in client.facts.describe()


def test_an_unknown_generation_is_refused() -> None:
    with pytest.raises(ValueError, match="api_generation must be one of"):
        AsyncSandboxClient("http://sandbox.test", api_generation="2")


def test_facts_are_kept_per_server_url() -> None:
    book = ServerFactsBook()
    book.facts("http://a.test/").generation = "1"
    assert book.facts("http://a.test").generation == "1"
    assert book.facts("http://b.test").generation is None


@pytest.mark.parametrize(
    ("body", "cursor"),
    [
        ([RUN], None),
        ({"items": [RUN], "next_cursor": "c2"}, "c2"),
        ({"items": [RUN], "has_next": True, "next_token": "t2"}, "t2"),
        ({"items": [RUN], "has_next": False, "next_token": "stale"}, None),
    ],
)
async def test_list_replies_in_every_shape(
    make_client: Callable[..., AsyncSandboxClient], body: Any, cursor: str | None
) -> None:
    async with make_client(lambda request: httpx.Response(200, json=body)) as client:
        page = await client.list_runs("sb_1")
    assert [run.id for run in page.items] == ["run_1"]
    assert page.next_cursor == cursor


async def test_upper_case_codes_are_read_and_the_request_id_is_kept(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            403,
            json={"error": "Monthly quota used up", "code": "QUOTA_EXCEEDED"},
            headers={"x-request-id": "req_abc123"},
        )

    async with make_client(handler) as client:
        with pytest.raises(QuotaExceededError) as caught:  # the upper-case code is recognised
            await client.get_sandbox("sb_1")
    assert caught.value.code == "quota_exceeded"
    assert "request req_abc123" in str(caught.value)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (503, {"error": "async code runs require Supabase configuration", "code": "x"}),
        (
            500,
            {
                "error": "async code runs requires runtime host h1; remote routing is not "
                "implemented yet"
            },
        ),
        (400, {"error": {"message": "no", "code": "FEATURE_UNAVAILABLE"}}),
        (409, {"error": "no", "code": "not_implemented"}),
        (501, {"error": "no"}),
    ],
)
async def test_async_runs_unavailable_is_recognised_and_not_retried(
    make_client: Callable[..., AsyncSandboxClient], status: int, body: Any
) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(status, json=body)

    async with make_client(handler) as client:
        with pytest.raises(SandboxAPIError) as caught:
            await client.create_run("sb_1", code="1", context_id="ctx_1")
    assert runs_unavailable(caught.value)
    assert len(calls) == 1


async def test_an_ordinary_503_is_still_retried(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) < 3:
            return httpx.Response(503, json={"error": "busy", "code": "capacity_exceeded"})
        return httpx.Response(202, json=RUN)

    async with make_client(handler) as client:
        run = await client.create_run("sb_1", code="1", context_id="ctx_1")
    assert run.id == "run_1"
    assert len(calls) == 3
    assert not runs_unavailable(ServerError("busy", status_code=503, code="capacity_exceeded"))


# -- against real servers ------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxes_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("0x-only"), None, "--api", "sandboxes")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def machines_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = start_server(tmp_path_factory.mktemp("1x-only"), None, "--api", "machines")
    try:
        yield server
    finally:
        server.stop()


async def _whole_flow(client: AsyncSandboxClient) -> None:
    sandbox = await client.create_sandbox(template="code-interpreter")
    try:
        assert sandbox.id in {s.id for s in await client.list_sandboxes()}
        context = await client.create_context(sandbox.id)
        run = await client.create_run(
            sandbox.id, code="open('a.txt', 'w').write('abc')\nprint('hi')", context_id=context.id
        )
        assert run.sandbox_id == sandbox.id
        final = await poll_run(
            client, sandbox.id, run.id, policy=PollPolicy(), deadline=run_deadline(run), initial=run
        )
        assert final.status == "succeeded"
        assert final.execution.logs.stdout == ("hi\n",)
        assert [r.id for r in (await client.list_runs(sandbox.id)).items] == [run.id]
        [artifact] = (await client.list_artifacts(sandbox.id)).items
        assert await client.download_artifact(sandbox.id, artifact.id) == b"abc"
        await client.interrupt_context(sandbox.id, context.id)
        await client.restart_context(sandbox.id, context.id)
        events = [
            event
            async for event in client.execute_stream(
                sandbox.id, code="print(40 + 2)", context_id=context.id
            )
        ]
        assert {"type": "stdout", "text": "42\n"}.items() <= events[0].items()
    finally:
        await client.delete_sandbox(sandbox.id)


@pytest.mark.parametrize(
    ("server_name", "expected"),
    [("sandboxes_only", "0"), ("machines_only", "1"), ("live_server", "1")],
)
async def test_every_call_works_on_each_kind_of_server(
    request: pytest.FixtureRequest, server_name: str, expected: str
) -> None:
    server: LiveServer = request.getfixturevalue(server_name)
    async with AsyncSandboxClient(server.url, server.token) as client:
        assert await client.api_generation() == expected
        await _whole_flow(client)


async def test_forcing_the_wrong_generation_gives_a_clear_not_found(
    sandboxes_only: LiveServer,
) -> None:
    async with AsyncSandboxClient(
        sandboxes_only.url, sandboxes_only.token, api_generation="1"
    ) as client:
        with pytest.raises(Exception, match="No such route") as caught:
            await client.create_sandbox()
    assert "request req_" in str(caught.value)
