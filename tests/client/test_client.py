"""AsyncSandboxClient against faults injected with httpx.MockTransport."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from sandbox_magic import __version__
from sandbox_magic.client import (
    ArtifactTooLargeError,
    AsyncSandboxClient,
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    Page,
    RateLimitedError,
    RetryPolicy,
    Run,
    Sandbox,
    SandboxConnectionError,
    SandboxError,
    SandboxProtocolError,
    ServerError,
)

pytestmark = pytest.mark.anyio

MakeClient = Callable[..., AsyncSandboxClient]

SANDBOX = {"id": "sb_1", "status": "running", "config": {"vcpus": 2, "memory_mb": 512}}
CONTEXT = {"id": "ctx_1", "language": "python", "cwd": "/workspace"}
ARTIFACT = {"id": "art_1", "name": "plot.png", "kind": "image", "size_bytes": 3}


def ok(body: Any, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


class Recorder:
    """A scripted MockTransport handler: answers in turn, repeats the last, logs requests."""

    def __init__(
        self, *answers: httpx.Response | Exception | Callable[[], httpx.Response | Exception]
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if not isinstance(answer, httpx.Response | Exception):
            answer = answer()
        if isinstance(answer, httpx.TransportError):
            raise type(answer)(str(answer), request=request)
        if isinstance(answer, Exception):
            raise answer
        try:
            content = answer.content
        except httpx.ResponseNotRead:
            return answer  # a streamed body: answered once
        # A fresh copy, so one scripted answer can be served many times.
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)


# -- requests on the wire -----------------------------------------------------------


async def test_requests_carry_bearer_key_user_agent_and_json(
    make_client: MakeClient, secret: str
) -> None:
    rec = Recorder(ok(SANDBOX, 201))
    async with make_client(rec) as client:
        sandbox = await client.create_sandbox(template="code-interpreter", timeout_ms=1000)
    request = rec.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/v1/sandboxes"
    assert request.headers["authorization"] == f"Bearer {secret}"
    assert request.headers["user-agent"] == f"sandbox-magic/{__version__}"
    assert json.loads(request.content) == {"template": "code-interpreter", "timeout_ms": 1000}
    assert sandbox == Sandbox.from_json(SANDBOX)
    assert sandbox.vcpus == 2


async def test_client_without_key_sends_no_authorization(make_client: MakeClient) -> None:
    rec = Recorder(ok([SANDBOX]))
    async with make_client(rec, api_key=None) as client:
        await client.list_sandboxes()
        assert not client.has_api_key
    assert "authorization" not in rec.requests[0].headers


async def test_create_run_sends_contract_body_and_reads_202(
    make_client: MakeClient, run_json: Callable[..., dict[str, Any]]
) -> None:
    rec = Recorder(ok(run_json(status="queued"), 202))
    async with make_client(rec) as client:
        run = await client.create_run(
            "sb_1", code="print(1)", context_id="ctx_1", envs={"A": "1"}, timeout=2.5
        )
    request = rec.requests[0]
    assert request.url.path == "/v1/sandboxes/sb_1/code/runs"
    body = json.loads(request.content)
    assert body == {"code": "print(1)", "context_id": "ctx_1", "envs": {"A": "1"}, "timeout": 3}
    assert uuid.UUID(request.headers["idempotency-key"])
    assert run.status == "queued"


async def test_ids_are_escaped_in_paths(make_client: MakeClient) -> None:
    rec = Recorder(ok(SANDBOX))
    async with make_client(rec) as client:
        await client.get_sandbox("sb/../x")
    assert rec.requests[0].url.raw_path == b"/v1/sandboxes/sb%2F..%2Fx"


async def test_empty_id_is_refused_before_any_request(make_client: MakeClient) -> None:
    rec = Recorder(ok(SANDBOX))
    async with make_client(rec) as client:
        with pytest.raises(ValueError, match="sandbox_id"):
            await client.get_sandbox("")
    assert rec.requests == []


@pytest.mark.parametrize("body", [[SANDBOX], {"items": [SANDBOX]}])
async def test_list_sandboxes_accepts_bare_list_or_items(
    make_client: MakeClient, body: Any
) -> None:
    async with make_client(Recorder(ok(body))) as client:
        assert [s.id for s in await client.list_sandboxes()] == ["sb_1"]


async def test_list_runs_sends_filters_and_returns_page(
    make_client: MakeClient, run_json: Callable[..., dict[str, Any]]
) -> None:
    rec = Recorder(ok({"items": [run_json("run_1"), run_json("run_2")], "next_cursor": "c2"}))
    async with make_client(rec) as client:
        page = await client.list_runs("sb_1", status="running", limit=2, cursor="c1")
    assert isinstance(page, Page)
    assert [r.id for r in page.items] == ["run_1", "run_2"]
    assert page.next_cursor == "c2"
    assert dict(rec.requests[0].url.params) == {"status": "running", "limit": "2", "cursor": "c1"}


async def test_list_artifacts_last_page_has_no_cursor(make_client: MakeClient) -> None:
    rec = Recorder(ok({"items": [ARTIFACT], "next_cursor": None}))
    async with make_client(rec) as client:
        page = await client.list_artifacts("sb_1", context_id="ctx_1", execution_count=3)
    assert page.next_cursor is None
    assert page.items[0].name == "plot.png"
    assert dict(rec.requests[0].url.params) == {"context_id": "ctx_1", "execution_count": "3"}


async def test_context_calls_hit_contract_paths(make_client: MakeClient) -> None:
    rec = Recorder(ok(CONTEXT, 201))
    async with make_client(rec) as client:
        context = await client.create_context("sb_1", language="python")
        rec.answers = [ok([CONTEXT])]
        contexts = await client.list_contexts("sb_1")
        rec.answers = [httpx.Response(200)]
        await client.restart_context("sb_1", "ctx_1")
        await client.interrupt_context("sb_1", "ctx_1")
        rec.answers = [httpx.Response(204)]
        await client.delete_context("sb_1", "ctx_1")
    assert context.id == "ctx_1"
    assert contexts == [context]
    assert [(r.method, r.url.path) for r in rec.requests] == [
        ("POST", "/v1/sandboxes/sb_1/code/contexts"),
        ("GET", "/v1/sandboxes/sb_1/code/contexts"),
        ("POST", "/v1/sandboxes/sb_1/code/contexts/ctx_1/restart"),
        ("POST", "/v1/sandboxes/sb_1/code/contexts/ctx_1/interrupt"),
        ("DELETE", "/v1/sandboxes/sb_1/code/contexts/ctx_1"),
    ]
    assert "idempotency-key" in rec.requests[0].headers


async def test_health_is_true_on_2xx_and_false_otherwise(make_client: MakeClient) -> None:
    async with make_client(Recorder(ok({"status": "ok"}))) as client:
        assert await client.health() is True
    async with make_client(Recorder(httpx.Response(500))) as client:
        assert await client.health() is False
    async with make_client(Recorder(httpx.ConnectError("refused"))) as client:
        assert await client.health() is False


# -- idempotency and retries ----------------------------------------------------------


async def test_retried_create_run_reuses_one_idempotency_key(
    make_client: MakeClient, run_json: Callable[..., dict[str, Any]]
) -> None:
    rec = Recorder(
        httpx.Response(503),
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ReadTimeout("timed out"),
        ok(run_json(), 202),
    )
    async with make_client(rec) as client:
        run = await client.create_run("sb_1", code="1", context_id="ctx_1")
    keys = {r.headers["idempotency-key"] for r in rec.requests}
    assert len(rec.requests) == 4
    assert len(keys) == 1
    assert run.id == "run_1"


async def test_each_logical_create_gets_its_own_key(
    make_client: MakeClient, run_json: Callable[..., dict[str, Any]]
) -> None:
    rec = Recorder(ok(run_json(), 202))
    async with make_client(rec) as client:
        await client.create_run("sb_1", code="1", context_id="ctx_1")
        await client.create_run("sb_1", code="1", context_id="ctx_1")
        await client.create_run("sb_1", code="1", context_id="ctx_1", idempotency_key="mine")
    keys = [r.headers["idempotency-key"] for r in rec.requests]
    assert keys[0] != keys[1]
    assert keys[2] == "mine"


async def test_503_then_success_returns_result_after_backoff(
    make_client: MakeClient, fake_time: Any
) -> None:
    rec = Recorder(httpx.Response(503), httpx.Response(502), ok(SANDBOX))
    async with make_client(rec) as client:
        sandbox = await client.get_sandbox("sb_1")
    assert sandbox.id == "sb_1"
    assert len(rec.requests) == 3
    assert len(fake_time.sleeps) == 2
    policy = RetryPolicy()
    assert all(0 <= s <= policy.base_delay * 2**i for i, s in enumerate(fake_time.sleeps))


async def test_429_retry_after_seconds_is_honoured(make_client: MakeClient, fake_time: Any) -> None:
    rec = Recorder(httpx.Response(429, headers={"Retry-After": "2"}), ok(SANDBOX))
    async with make_client(rec) as client:
        await client.get_sandbox("sb_1")
    assert fake_time.sleeps == [2.0]


async def test_429_retry_after_http_date_is_honoured(
    make_client: MakeClient, fake_time: Any
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=4), usegmt=True)
    rec = Recorder(httpx.Response(429, headers={"Retry-After": when}), ok(SANDBOX))
    async with make_client(rec) as client:
        await client.get_sandbox("sb_1")
    assert len(fake_time.sleeps) == 1
    assert 2.0 <= fake_time.sleeps[0] <= 4.0


async def test_429_asking_too_long_a_wait_fails_at_once(
    make_client: MakeClient, fake_time: Any
) -> None:
    rec = Recorder(
        httpx.Response(
            429,
            json={"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
            headers={"Retry-After": "3600"},
        )
    )
    async with make_client(rec) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_sandbox("sb_1")
    assert info.value.retry_after == 3600
    assert "asked to wait 3600 s" in str(info.value)
    assert fake_time.sleeps == []
    assert len(rec.requests) == 1


async def test_retry_exhaustion_says_how_often_and_how_long(
    make_client: MakeClient, fake_time: Any
) -> None:
    rec = Recorder(httpx.Response(503, json={"error": "busy", "code": "capacity_exceeded"}))
    policy = RetryPolicy(max_attempts=4, base_delay=1.0)
    async with make_client(rec, retry=policy) as client:
        with pytest.raises(ServerError) as info:
            await client.get_run("sb_1", "run_1")
    assert len(rec.requests) == 4
    message = str(info.value)
    assert "gave up after 4 attempts" in message
    assert "busy" in message
    assert "HTTP 503" in message
    assert info.value.code == "capacity_exceeded"


async def test_total_wait_bound_is_honoured(make_client: MakeClient, fake_time: Any) -> None:
    rec = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    policy = RetryPolicy(max_attempts=1000, total_timeout=5.0, base_delay=1.0, max_delay=2.0)
    start = fake_time.now
    async with make_client(rec, retry=policy) as client:
        with pytest.raises(SandboxConnectionError, match="gave up after"):
            await client.get_sandbox("sb_1")
    assert fake_time.now - start <= 5.0
    assert sum(fake_time.sleeps) <= 5.0
    assert 2 < len(rec.requests) < 1000


async def test_4xx_is_not_retried(make_client: MakeClient, fake_time: Any) -> None:
    rec = Recorder(httpx.Response(400, json={"error": "bad code", "code": "invalid_request"}))
    async with make_client(rec) as client:
        with pytest.raises(InvalidRequestError, match="bad code"):
            await client.create_run("sb_1", code="1", context_id="ctx_1")
    assert len(rec.requests) == 1
    assert fake_time.sleeps == []


async def test_explicit_retryable_false_is_not_retried(make_client: MakeClient) -> None:
    body = {"error": {"message": "quota", "code": "quota_exceeded", "retryable": False}}
    rec = Recorder(httpx.Response(503, json=body))
    async with make_client(rec) as client:
        with pytest.raises(ServerError, match="quota"):
            await client.get_sandbox("sb_1")
    assert len(rec.requests) == 1


async def test_restart_is_retried_only_when_surely_not_processed(make_client: MakeClient) -> None:
    rec = Recorder(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200))
    async with make_client(rec) as client:
        await client.restart_context("sb_1", "ctx_1")
    assert len(rec.requests) == 3

    for fault in (httpx.ReadTimeout("slow"), httpx.Response(502)):
        rec = Recorder(fault, httpx.Response(200))
        async with make_client(rec) as client:
            with pytest.raises(SandboxError):
                await client.restart_context("sb_1", "ctx_1")
        assert len(rec.requests) == 1


async def test_delete_retried_after_lost_answer_treats_404_as_done(make_client: MakeClient) -> None:
    rec = Recorder(httpx.ReadTimeout("slow"), httpx.Response(404, json={"error": "gone"}))
    async with make_client(rec) as client:
        await client.delete_sandbox("sb_1")
    assert len(rec.requests) == 2


async def test_delete_of_unknown_object_is_not_found(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(404, json={"error": "no such sandbox", "code": "not_found"}))
    async with make_client(rec) as client:
        with pytest.raises(NotFoundError, match="no such sandbox"):
            await client.delete_sandbox("sb_1")


async def test_cancel_is_retried(
    make_client: MakeClient, run_json: Callable[..., dict[str, Any]]
) -> None:
    rec = Recorder(httpx.Response(504), ok(run_json(status="cancelled"), 202))
    async with make_client(rec) as client:
        run = await client.cancel_run("sb_1", "run_1")
    assert run.status == "cancelled"
    assert rec.requests[-1].url.path == "/v1/sandboxes/sb_1/code/runs/run_1/cancel"


# -- error mapping ------------------------------------------------------------------


async def test_flat_error_shape_is_read(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(404, json={"error": "run not found", "code": "not_found"}))
    async with make_client(rec) as client:
        with pytest.raises(NotFoundError) as info:
            await client.get_run("sb_1", "run_x")
    assert info.value.message == "run not found"
    assert info.value.code == "not_found"
    assert info.value.status_code == 404


async def test_nested_error_shape_is_read(make_client: MakeClient) -> None:
    body = {
        "error": {
            "message": "bad key",
            "code": "auth_failed",
            "request_id": "req_42",
            "retryable": False,
        }
    }
    async with make_client(Recorder(httpx.Response(401, json=body))) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.list_sandboxes()
    err = info.value
    assert (err.message, err.code, err.request_id, err.retryable) == (
        "bad key",
        "auth_failed",
        "req_42",
        False,
    )
    assert "request req_42" in str(err)
    assert "NULLSPACE_API_KEY" in str(err)


async def test_detail_shape_and_request_id_header_are_read(make_client: MakeClient) -> None:
    rec = Recorder(
        httpx.Response(422, json={"detail": "code missing"}, headers={"X-Request-Id": "r9"})
    )
    async with make_client(rec) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.create_context("sb_1")
    assert info.value.message == "code missing"
    assert info.value.request_id == "r9"


async def test_html_502_page_gives_short_excerpt(make_client: MakeClient) -> None:
    page = (
        "<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
        "<body><h1>Bad Gateway</h1>" + "<p>filler</p>" * 500 + "</body></html>"
    )
    rec = Recorder(httpx.Response(502, text=page, headers={"content-type": "text/html"}))
    async with make_client(rec, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(ServerError) as info:
            await client.get_sandbox("sb_1")
    message = str(info.value)
    assert "502 Bad Gateway" in message
    assert "<" not in message
    assert "filler" not in message
    assert len(message) < 300
    assert "http://sandbox.test" in message


async def test_plain_text_error_body_is_excerpted(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(418, text="x" * 5000))
    async with make_client(rec) as client:
        with pytest.raises(InvalidRequestError) as info:
            await client.get_sandbox("sb_1")
    assert len(str(info.value)) < 400
    assert "…" in str(info.value)


async def test_connection_refused_names_url_in_user_words(make_client: MakeClient) -> None:
    rec = Recorder(httpx.ConnectError("[Errno 111] Connection refused"))
    async with make_client(
        rec, base_url="http://user:hunter2@sandbox.test:8765/", retry=RetryPolicy(max_attempts=1)
    ) as client:
        assert client.base_url == "http://sandbox.test:8765"
        with pytest.raises(SandboxConnectionError) as info:
            await client.get_sandbox("sb_1")
    assert info.value.url == "http://sandbox.test:8765"
    assert "connection refused" in str(info.value)
    assert "hunter2" not in str(info.value)


async def test_read_timeout_says_how_long(make_client: MakeClient) -> None:
    rec = Recorder(httpx.ReadTimeout("The read operation timed out"))
    async with make_client(rec, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(SandboxConnectionError, match="timed out after 30 s"):
            await client.get_run("sb_1", "run_1")


async def test_connect_timeout_uses_configured_value(make_client: MakeClient) -> None:
    rec = Recorder(httpx.ConnectTimeout("connect"))
    async with make_client(rec, connect_timeout=2.5, retry=RetryPolicy(max_attempts=1)) as client:
        with pytest.raises(
            SandboxConnectionError, match=r"timed out after 2\.5 s while connecting"
        ):
            await client.get_run("sb_1", "run_1")


async def test_truncated_json_is_a_protocol_error(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(200, content=b'{"id": "run_1", "stat'))
    async with make_client(rec) as client:
        with pytest.raises(SandboxProtocolError, match="not valid JSON"):
            await client.get_run("sb_1", "run_1")


async def test_wrong_shape_is_a_protocol_error(make_client: MakeClient) -> None:
    async with make_client(Recorder(ok({"status": "running"}))) as client:
        with pytest.raises(SandboxProtocolError, match=r"run\.id"):
            await client.get_run("sb_1", "run_1")
    async with make_client(Recorder(ok({"items": "nope"}))) as client:
        with pytest.raises(SandboxProtocolError, match="should be a list"):
            await client.list_runs("sb_1")


async def test_unexpected_redirect_is_a_protocol_error(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(302, headers={"Location": "http://elsewhere.test/login"}))
    async with make_client(rec) as client:
        with pytest.raises(SandboxProtocolError, match="redirect"):
            await client.get_sandbox("sb_1")


async def test_closed_client_raises_connection_error(make_client: MakeClient) -> None:
    client = make_client(Recorder(ok(SANDBOX)))
    await client.aclose()
    assert client.is_closed
    with pytest.raises(SandboxConnectionError, match="closed"):
        await client.get_sandbox("sb_1")


# -- no raw exception escapes any public method -------------------------------------

FAULTS: list[Callable[[], httpx.Response | Exception]] = [
    lambda: httpx.Response(200, content=b"{trunc"),
    lambda: httpx.Response(200, content=b"\xff\xfe not utf8"),
    lambda: httpx.Response(200, json=[1, 2]),
    lambda: httpx.Response(200, json={"items": [{"no": "id"}]}),
    lambda: httpx.Response(200, json=42),
    lambda: httpx.Response(200, json={"id": 7, "status": None}),
    lambda: httpx.Response(204),
    lambda: httpx.Response(500, content=b"\x00\x01"),
    lambda: httpx.Response(301),
    lambda: httpx.Response(
        200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip")
    ),
    lambda: httpx.ConnectError("boom"),
    lambda: httpx.ReadTimeout("slow"),
    lambda: httpx.RemoteProtocolError("peer closed connection"),
    lambda: httpx.ReadError("reset"),
    lambda: httpx.ProxyError("proxy"),
    lambda: httpx.UnsupportedProtocol("ftp"),
]

CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("create_sandbox", (), {}),
    ("list_sandboxes", (), {}),
    ("get_sandbox", ("sb",), {}),
    ("delete_sandbox", ("sb",), {}),
    ("create_context", ("sb",), {}),
    ("list_contexts", ("sb",), {}),
    ("delete_context", ("sb", "c"), {}),
    ("restart_context", ("sb", "c"), {}),
    ("interrupt_context", ("sb", "c"), {}),
    ("create_run", ("sb",), {"code": "1", "context_id": "c"}),
    ("get_run", ("sb", "r"), {}),
    ("list_runs", ("sb",), {}),
    ("cancel_run", ("sb", "r"), {}),
    ("list_artifacts", ("sb",), {}),
    ("get_artifact", ("sb", "a"), {}),
    ("download_artifact", ("sb", "a"), {"max_bytes": 10}),
    ("preview_artifact", ("sb", "a"), {}),
    ("delete_artifact", ("sb", "a"), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS, ids=[c[0] for c in CALLS])
async def test_no_raw_exception_escapes(
    make_client: MakeClient, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    for fault in FAULTS:
        async with make_client(Recorder(fault), retry=RetryPolicy(max_attempts=2)) as client:
            try:
                await getattr(client, name)(*args, **kwargs)
            except SandboxError:
                pass
            except Exception as exc:  # pragma: no cover - the assertion's message
                pytest.fail(f"{name} let {type(exc).__name__} escape on {fault()!r}: {exc}")


# -- artifacts ----------------------------------------------------------------------


async def test_download_returns_bytes_within_limit(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(200, content=b"abc"))
    async with make_client(rec) as client:
        assert await client.download_artifact("sb_1", "art_1", max_bytes=3) == b"abc"
    assert rec.requests[0].url.path == "/v1/sandboxes/sb_1/code/artifacts/art_1/download"


async def test_download_refuses_declared_oversize(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(200, content=b"x" * 100))
    async with make_client(rec) as client:
        with pytest.raises(ArtifactTooLargeError) as info:
            await client.download_artifact("sb_1", "art_1", max_bytes=10)
    assert info.value.size == 100
    assert "art_1" in str(info.value)
    assert "limit is 10 bytes" in str(info.value)


async def test_download_refuses_streamed_oversize_without_length(make_client: MakeClient) -> None:
    chunks_sent: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for _ in range(1000):
            chunks_sent.append(1)
            yield b"x" * 64

    rec = Recorder(httpx.Response(200, content=body()))
    async with make_client(rec) as client:
        with pytest.raises(ArtifactTooLargeError):
            await client.download_artifact("sb_1", "art_1", max_bytes=200)
    assert len(chunks_sent) < 10


async def test_download_error_status_is_mapped(make_client: MakeClient) -> None:
    rec = Recorder(httpx.Response(404, json={"error": "no artifact", "code": "not_found"}))
    async with make_client(rec) as client:
        with pytest.raises(NotFoundError, match="no artifact"):
            await client.download_artifact("sb_1", "art_1")


async def test_preview_returns_bytes_and_content_type(make_client: MakeClient) -> None:
    rec = Recorder(
        httpx.Response(200, content=b"<svg/>", headers={"content-type": "image/svg+xml"})
    )
    async with make_client(rec) as client:
        assert await client.preview_artifact("sb_1", "art_1") == (b"<svg/>", "image/svg+xml")
    assert rec.requests[0].url.path.endswith("/art_1/preview")


async def test_get_and_delete_artifact(make_client: MakeClient) -> None:
    rec = Recorder(ok(ARTIFACT))
    async with make_client(rec) as client:
        artifact = await client.get_artifact("sb_1", "art_1")
        rec.answers = [httpx.Response(204)]
        await client.delete_artifact("sb_1", "art_1")
    assert artifact.size_bytes == 3
    assert rec.requests[1].method == "DELETE"


# -- the key stays secret -----------------------------------------------------------


async def test_key_never_in_repr_str_errors_or_logs(
    make_client: MakeClient, secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = {"error": {"message": f"token {secret} is not valid", "code": "auth_failed"}}
    faults: list[httpx.Response | Exception] = [
        httpx.Response(401, json=echo),
        httpx.Response(500, text=f"<html><title>oops {secret}</title></html>"),
        httpx.ConnectError(f"refused {secret}"),
        httpx.Response(200, content=b"{bad"),
    ]
    texts: list[str] = []
    for fault in faults:
        client = make_client(Recorder(fault), retry=RetryPolicy(max_attempts=2))
        texts += [repr(client), str(client), repr(vars(client))]
        try:
            await client.get_run("sb_1", "run_1")
        except SandboxError as exc:
            texts += [str(exc), repr(exc), *exc._render_traceback_()]
        await client.aclose()
    texts.append(caplog.text)
    assert texts
    for text in texts:
        assert secret not in text
    assert (
        repr(make_client(Recorder(ok({})))) == "<AsyncSandboxClient base_url='http://sandbox.test'>"
    )


def test_client_cannot_be_pickled(make_client: MakeClient) -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(make_client(Recorder(ok({}))))


def test_invalid_base_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        AsyncSandboxClient("localhost:8765")


async def test_real_socket_refused_is_a_connection_error() -> None:
    """No mock: a port nobody listens on, to check the wording of a real refusal."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AsyncSandboxClient(f"http://127.0.0.1:{port}", "k", retry=RetryPolicy(max_attempts=1))
    async with client:
        with pytest.raises(SandboxConnectionError, match="connection refused"):
            await client.list_sandboxes()


def test_run_model_is_what_get_run_returns() -> None:
    # Guards the models import used throughout these tests.
    assert Run.from_json({"id": "r", "status": "queued"}).status == "queued"
