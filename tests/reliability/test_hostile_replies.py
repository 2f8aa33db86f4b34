"""Hostile and malformed replies: rendered, or refused with one clear protocol error.

Whatever a server sends as a run, the path a cell takes (``Run.from_json`` ->
`OutputCursor` -> `OutputSink` -> the cell's exception) either shows output or raises
a `SandboxError`; never a ``KeyError``, ``TypeError``, ``binascii.Error`` or the like.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from faultproxy import Exchange, FaultProxy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import sandbox_magic.session.sandbox_session
from sandbox_magic.client import (
    AsyncSandboxClient,
    OutputCursor,
    Run,
    SandboxError,
    SandboxProtocolError,
    ordered_outputs,
    progress_key,
    run_deadline,
)
from sandbox_magic.notebook.status import RunSummary
from sandbox_magic.render.redact import Redactor
from sandbox_magic.render.sink import OutputSink

SECRET = "hostile-secret-4242"
LIMIT = 4096
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40).decode()

GOOD_RUN: dict[str, Any] = {
    "id": "run_1",
    "sandbox_id": "sb_1",
    "context_id": "ctx_1",
    "status": "succeeded",
    "timeout_secs": 60,
    "created_at": "2025-01-01T00:00:00Z",
    "completed_at": "2025-01-01T00:00:01Z",
    "failure_reason": None,
    "execution": {
        "results": [
            {"text": "1", "html": "<b>1</b>", "png": PNG, "is_main_result": False},
            {"json": {"a": [1, 2]}, "data": {"application/vnd.plotly.v1+json": {"data": []}}},
            {"text": "42", "is_main_result": True},
        ],
        "logs": {"stdout": ["out\n", f"{SECRET}\n"], "stderr": ["err\n"]},
        "error": {"name": "ValueError", "value": "bad", "traceback": ["line 1", "line 2"]},
        "execution_count": 3,
        "output_order": [
            {"type": "stdout", "index": 0},
            {"type": "result", "index": 0},
            {"type": "stderr", "index": 0},
            {"type": "result", "index": 1},
            {"type": "stdout", "index": 1},
            {"type": "result", "index": 2},
        ],
        "artifacts": [
            {"id": "art_1", "name": "a.png", "kind": "image", "size_bytes": 10, "sha256": "ab"}
        ],
    },
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)

odd_strings = st.sampled_from(
    [
        "",
        "not base64 at all!",
        "====",
        "é" * 10,
        "\x00\ud800",
        "<script>alert(1)</script>",
        "x" * (3 * LIMIT),
        "hibernating",
        SECRET,
        "\x1b[31mred\x1b[0m",
    ]
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


def _set(root: Any, path: tuple[Any, ...], value: Any, *, delete: bool = False) -> Any:
    if not path:
        return value
    parent = functools.reduce(lambda node, key: node[key], path[:-1], root)
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return root


@st.composite
def mutated_runs(draw: st.DrawFn) -> Any:
    """The good run with a few fields replaced, removed, blown up or added."""
    run: Any = copy.deepcopy(GOOD_RUN)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        paths = list(_paths(run))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "odd", "delete", "add"]))
        if action == "delete" and path:
            run = _set(run, path, None, delete=True)
        elif action == "add" and isinstance(_get(run, path), dict):
            _get(run, path)[draw(st.text(max_size=12))] = draw(json_values)
        elif action == "odd":
            run = _set(run, path, draw(odd_strings))
        else:
            run = _set(run, path, draw(json_values))
    return run


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    return functools.reduce(lambda node, key: node[key], path, root)


def render_like_a_cell(payload: Any) -> tuple[str, Any]:
    """What a cell does with a polled payload; ('refused', error) or ('shown', outputs)."""
    try:
        run = Run.from_json(payload)
    except SandboxProtocolError as error:
        refused = error
    else:
        refused = None
    if refused is not None:
        assert str(refused).startswith("Malformed reply from the sandbox server")
        return "refused", refused
    progress_key(run)
    sink = OutputSink(max_output_bytes=LIMIT, redactor=Redactor([SECRET]))
    cursor = OutputCursor()
    with capture_output() as captured:
        for output in cursor.advance(run.execution):
            sink.emit(output)
        ordered_outputs(run.execution)
        if run.execution.artifacts:
            sink.artifacts(run.execution.artifacts, base_url="http://sandbox.test")
        failure = sink.exception_for(run)
        value = sink.main_value()
        summary = RunSummary.from_run(run, duration=1.0, context="default")
        summary = summary.redacted(sink.redactor).text()
    assert failure is None or isinstance(failure, SandboxError)
    if failure is not None:
        "\n".join(failure._render_traceback_())  # must not raise either
    shown = [captured.stdout, captured.stderr, summary, str(failure or "")]
    for output in captured.outputs:
        json.dumps(output.data)  # every published bundle is JSON-serialisable
        json.dumps(output.metadata)
        shown.append(json.dumps(output.data))
    if value is not None:
        shown.append(json.dumps(value._repr_mimebundle_()))
    text = "\n".join(shown)
    assert SECRET not in text.replace("\\", "")
    return "shown", captured


@pytest.fixture(autouse=True)
def _shell(ip: InteractiveShell) -> InteractiveShell:
    return ip


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(payload=st.one_of(mutated_runs(), json_values))
def test_any_run_payload_renders_or_fails_with_one_protocol_error(payload: Any) -> None:
    render_like_a_cell(payload)


def test_the_unmutated_run_renders_everything() -> None:
    kind, captured = render_like_a_cell(copy.deepcopy(GOOD_RUN))
    assert kind == "shown"
    assert "out" in captured.stdout
    assert "[redacted]" in captured.stdout


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("id",), 7),
        (("status",), None),
        (("execution",), [1, 2]),
        (("execution", "results"), "nope"),
        (("execution", "results", 0), "nope"),
        (("execution", "artifacts", 0, "id"), {"x": 1}),
    ],
)
def test_wrong_types_in_required_places_are_one_protocol_error(
    where: tuple[Any, ...], value: Any
) -> None:
    kind, error = render_like_a_cell(_set(copy.deepcopy(GOOD_RUN), where, value))
    assert kind == "refused"
    path = "run" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)
    assert path in str(error)


def test_bad_base64_renders_a_placeholder() -> None:
    run = copy.deepcopy(GOOD_RUN)
    run["execution"]["results"][0]["png"] = "this is *not* base64"
    kind, captured = render_like_a_cell(run)
    assert kind == "shown"
    [first] = [
        o.data
        for o in captured.outputs
        if "text/html" in o.data and "<b>1</b>" in o.data["text/html"]
    ]
    assert "image/png" not in first
    assert "image/png: invalid base64 from the server" in first["text/plain"]


def test_huge_payloads_are_truncated_visibly() -> None:
    run = copy.deepcopy(GOOD_RUN)
    run["execution"]["logs"]["stdout"] = ["y" * (20 * LIMIT)]
    run["execution"]["results"][0] = {"html": "<p>" + "z" * (20 * LIMIT) + "</p>"}
    kind, captured = render_like_a_cell(run)
    assert kind == "shown"
    assert len(captured.stdout) < 2 * LIMIT
    assert "max_output_bytes" in captured.stdout
    html = next(o.data for o in captured.outputs if "<p>zzz" in o.data.get("text/html", ""))
    assert "of text/html truncated" in html["text/plain"]
    assert LIMIT // 2 < html["text/html"].count("z") <= LIMIT


@pytest.mark.anyio
async def test_json_nested_absurdly_deep_is_a_protocol_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    client = AsyncSandboxClient(
        "http://sandbox.test",
        transport=httpx.MockTransport(lambda request: httpx.Response(200, content=deep)),
        sleep=_no_sleep,
    )
    async with client:
        with pytest.raises(SandboxProtocolError, match="not valid JSON"):
            await client.get_run("sb_1", "run_1")


async def _no_sleep(seconds: float) -> None:
    return None


# -- through the real magic, a proxy spoiling the run the server returns -------------


@pytest.fixture
def plain_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client hears no server extras, so runs are read by plain JSON polls (what
    the hosted service gives), which the proxy rewrites; watch answers are NDJSON."""
    monkeypatch.setattr(AsyncSandboxClient, "_learn", lambda self, response: None)


def _junk_plan(exchange: Exchange) -> str | None:
    path = exchange.path.split("?")[0]
    return "junk" if exchange.method == "GET" and "/code/runs/" in path else None


def _run_cell(ip: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = ip.run_cell(source)
    return result, captured


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda run: {**run, "execution": {**run["execution"], "results": "nope"}}, "results"),
        (lambda run: {k: v for k, v in run.items() if k != "status"}, "run.status"),
        (lambda run: {**run, "id": 12}, "run.id"),
        (lambda run: [run], "run should be an object"),
    ],
    ids=["results-not-a-list", "status-missing", "id-not-a-string", "not-an-object"],
)
@pytest.mark.usefixtures("plain_contract")
def test_malformed_run_from_the_server_fails_the_cell_with_a_clear_protocol_error(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    live_server: Any,
    mutate: Callable[[Any], Any],
    fragment: str,
) -> None:
    with FaultProxy(live_server.url, plan=_junk_plan, mutate=mutate) as proxy:
        point_shell(proxy.url, live_server.token)
        result, captured = _run_cell(ip, "%%sandbox\nimport time\ntime.sleep(0.3)\n1")
    error = result.error_in_exec
    assert isinstance(error, SandboxError), repr(error)  # one error, of our own kind
    assert "Malformed reply from the sandbox server" in str(error)
    assert fragment in str(error)
    shown = captured.stdout + captured.stderr
    assert "Traceback (most recent call last)" not in shown
    assert "sandbox_magic/" not in shown


@pytest.mark.usefixtures("plain_contract")
def test_unknown_status_keeps_polling_until_the_deadline_and_says_so(
    ip: InteractiveShell,
    point_shell: Callable[..., Any],
    live_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        sandbox_magic.session.sandbox_session,
        "run_deadline",
        functools.partial(run_deadline, slack=2.0),
    )

    def hibernate(run: Any) -> Any:
        return {**run, "status": "hibernating"}

    with FaultProxy(live_server.url, plan=_junk_plan, mutate=hibernate) as proxy:
        point_shell(proxy.url, live_server.token)
        result, captured = _run_cell(ip, "%%sandbox --timeout 1\n'done'")
        polls = sum(1 for method, _, fault in proxy.log if method == "GET" and fault == "junk")
    error = result.error_in_exec
    assert isinstance(error, SandboxError), repr(error)
    assert "Stopped waiting for run" in str(error)
    assert "still hibernating" in str(error)
    assert "%sandbox" in str(error)
    assert polls >= 3  # it kept asking
    assert "Traceback (most recent call last)" not in captured.stdout + captured.stderr


def test_huge_remote_output_is_truncated_visibly_through_the_magic(
    ip: InteractiveShell, point_shell: Callable[..., Any], live_server: Any
) -> None:
    point_shell(live_server.url, live_server.token, max_output_bytes=2000)
    result, captured = _run_cell(ip, "%%sandbox\nprint('q' * 200_000)")
    assert result.success, result.error_in_exec
    assert captured.stdout.count("q") <= 2000
    assert "of stdout" in captured.stdout
    assert "max_output_bytes" in captured.stdout
