"""Streamed executions: server-sent events read robustly and folded into run snapshots."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from sandbox_magic.client._client import AsyncSandboxClient
from sandbox_magic.client._cursor import OutputCursor
from sandbox_magic.client._errors import SandboxError, SandboxProtocolError
from sandbox_magic.client._models import Run
from sandbox_magic.client._sse import read_events
from sandbox_magic.client._streamed import StreamFold, is_streamed
from sandbox_magic.notebook.status import RunSummary
from sandbox_magic.render.failures import cell_exception
from sandbox_magic.session.streaming import stream_to_end

pytestmark = pytest.mark.anyio


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def _collect(*lines: str) -> list[dict[str, object]]:
    return [event async for event in read_events(_lines(*lines))]


async def test_events_are_read_from_data_lines_only() -> None:
    events = await _collect(
        ": a comment",
        "event: message",
        'data: {"type": "stdout", "text": "a"}',
        "",
        "id: 7",
        'data:{"type": "stderr",',
        'data: "text": "b"}',
        "",
        "data: [1, 2]",  # valid JSON but not an event: skipped
        "",
        'data: {"type": "number_of_executions", "execution_count": 3}',
    )
    assert events == [
        {"type": "stdout", "text": "a"},
        {"type": "stderr", "text": "b"},
        {"type": "number_of_executions", "execution_count": 3},
    ]


async def test_an_event_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(SandboxProtocolError, match="not valid JSON"):
        await _collect('data: {"type": "stdout", "te', "")


def _fold(*events: dict[str, object]) -> StreamFold:
    fold = StreamFold(sandbox_id="sb_1", context_id="ctx_1", timeout_secs=30)
    for event in events:
        fold.add(event)
    return fold


def test_snapshots_keep_the_order_outputs_arrived_in() -> None:
    fold = _fold(
        {"type": "stdout", "text": "one\n"},
        {"type": "result", "text": "<Figure>", "png": "iVBORw0KGgo="},
        {"type": "stderr", "text": "warn\n"},
        {"type": "result", "text": "42", "is_main_result": True},
        {"type": "number_of_executions", "execution_count": 5},
        {"type": "artifact", "artifact": {"id": "art_1", "name": "a.png", "kind": "image"}},
        {"type": "unknown-kind"},
    )
    running = fold.snapshot()
    assert running.status == "running"
    assert is_streamed(running)
    fold.finish()
    final = fold.snapshot()
    assert final.status == "succeeded"
    assert final.is_terminal
    assert final.execution.execution_count == 5
    assert final.execution.main_result is not None
    assert [a.id for a in final.execution.artifacts] == ["art_1"]
    outputs = OutputCursor().advance(final.execution)
    assert [o.text for o in outputs] == [
        "one\n",
        "<Figure>",
        "warn\n",
        "42",
    ]


def test_a_code_error_fails_the_cell_with_the_remote_exception() -> None:
    fold = _fold(
        {"type": "error", "name": "ZeroDivisionError", "value": "division by zero",
         "traceback": ["Traceback", "ZeroDivisionError: division by zero"]}
    )  # fmt: skip
    fold.finish()
    final = fold.snapshot()
    assert final.status == "failed"
    error = cell_exception(final)
    assert type(error).__name__ == "ZeroDivisionError"


def test_a_timeout_the_server_reports_fails_the_run_with_its_reason() -> None:
    fold = _fold(
        {"type": "error", "name": "KeyboardInterrupt", "value": "", "traceback": ["KI"]},
        {"type": "error", "name": "TimeoutError", "value": "timed out after 1 s", "traceback": ""},
    )
    fold.finish()
    final = fold.snapshot()
    assert (final.status, final.failure_reason) == ("failed", "timed out after 1 s")
    assert "timed out after 1 s" in str(cell_exception(final))


def test_an_interrupted_stream_ends_cancelled_and_its_summary_says_streamed() -> None:
    fold = _fold({"type": "stdout", "text": "partial\n"})
    fold.interrupted = True
    fold.finish()
    final = fold.snapshot()
    assert final.status == "cancelled"
    assert "interrupted" in str(cell_exception(final))
    summary = RunSummary.from_run(final).text()
    assert "cannot be re-attached" in summary
    assert fold.id not in summary  # no run id is offered for %sandbox attach


def test_malformed_events_change_nothing() -> None:
    fold = _fold()
    assert not fold.add({"type": "stdout", "text": 3})
    assert not fold.add({"type": "artifact", "artifact": {"name": "no id"}})
    assert not fold.add({"type": "number_of_executions", "execution_count": "3"})
    assert fold.snapshot().execution.logs.stdout == ()


async def test_execute_stream_posts_and_yields_events(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(
            200,
            content=b'data: {"type": "stdout", "text": "x"}\n\n',
            headers={"content-type": "text/event-stream"},
        )

    async with make_client(handler) as client:
        events = [e async for e in client.execute_stream("sb_1", code="1", timeout=2.5)]
    assert events == [{"type": "stdout", "text": "x"}]
    assert b'"timeout": 3' in bodies[0] or b'"timeout":3' in bodies[0]


async def test_execute_stream_errors_are_api_errors(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "machine gone", "code": "MACHINE_NOT_FOUND"})

    async with make_client(handler) as client:
        with pytest.raises(Exception, match="machine gone") as caught:
            _ = [e async for e in client.execute_stream("sb_1", code="1")]
    assert getattr(caught.value, "code", None) == "machine_not_found"


# -- a streamed execution to its end, with faults a real server will not give on demand --


class _Hanging(httpx.AsyncByteStream):
    """Sends some events, then breaks the connection or never ends."""

    def __init__(self, first: bytes, *, then: str) -> None:
        self.first, self.then = first, then

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        if self.then == "break":
            raise httpx.ReadError("connection reset by peer")
        await asyncio.sleep(3600)


def _stream_server(
    body: _Hanging, interrupts: list[str]
) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/interrupt"):
            interrupts.append(request.url.path)
            return httpx.Response(200, json={"status": "interrupted"})
        return httpx.Response(200, stream=body, headers={"content-type": "text/event-stream"})

    return handler


async def test_a_broken_stream_keeps_what_arrived_and_says_it_cannot_be_reattached(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    seen: list[Run] = []
    body = _Hanging(b'data: {"type": "stdout", "text": "before\\n"}\n\n', then="break")
    async with make_client(_stream_server(body, [])) as client:
        fold = StreamFold(sandbox_id="sb_1", context_id="ctx_1", timeout_secs=30)
        with pytest.raises(SandboxError, match="cannot be re-attached") as caught:
            await stream_to_end(client, fold, code="x", on_update=seen.append)
    assert "connection broke" in str(caught.value)
    assert seen[-1].status == "failed"
    assert seen[-1].execution.logs.stdout == ("before\n",)


async def test_a_stream_that_outlives_its_timeout_is_interrupted_and_fails(
    make_client: Callable[..., AsyncSandboxClient],
) -> None:
    interrupts: list[str] = []
    body = _Hanging(b'data: {"type": "stdout", "text": "slow\\n"}\n\n', then="hang")
    async with make_client(_stream_server(body, interrupts)) as client:
        fold = StreamFold(sandbox_id="sb_1", context_id="ctx_1", timeout_secs=1)
        final = await stream_to_end(client, fold, code="x", grace=0.2)
    assert final.status == "failed"
    assert final.failure_reason is not None
    assert final.failure_reason.startswith("timed out after 1 s")
    assert interrupts == ["/v1/sandboxes/sb_1/code/contexts/ctx_1/interrupt"]
    assert "timed out after 1 s" in str(cell_exception(final))
