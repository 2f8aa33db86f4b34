"""OutputSink in a real IPython shell: streams, display outputs, Out[n], errors, artifacts."""

from __future__ import annotations

import base64

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from sandbox_magic.client import (
    Artifact,
    Execution,
    ExecutionError,
    RemoteExecutionError,
    Result,
    Run,
    RunCancelledError,
    RunFailedError,
    StreamChunk,
)
from sandbox_magic.render.failures import ended_by_the_service, remote_error, run_error
from sandbox_magic.render.redact import Redactor
from sandbox_magic.render.sink import OutputSink
from sandbox_magic.render.value import RemoteValue

SECRET = "sk-test-abcdef123456"
RED = "\x1b[31m"


def sink(**kwargs: object) -> OutputSink:
    return OutputSink(**kwargs)  # type: ignore[arg-type]


def test_streams_go_to_the_cells_stdout_and_stderr_with_colours(ip: InteractiveShell) -> None:
    out = sink()
    with capture_output() as cap:
        assert out.emit(StreamChunk("stdout", f"{RED}hello\x1b[0m\n")) == "hello"
        out.emit(StreamChunk("stderr", "warning!\n"))
        out.emit(("stdout", "tuple chunk\n"))
        out.close()
    assert cap.stdout == f"{RED}hello\x1b[0m\ntuple chunk\n"
    assert cap.stderr == "warning!\n"
    assert cap.outputs == []


def test_display_results_carry_the_whole_bundle(ip: InteractiveShell) -> None:
    png = base64.b64encode(b"\x89PNG fake").decode()
    out = sink()
    with capture_output() as cap:
        out.emit(StreamChunk("stdout", "before\n"))
        out.emit(Result(text="<Figure>", png=png, data={"application/vnd.plotly.v1+json": {}}))
    assert cap.stdout == "before\n"
    [shown] = cap.outputs
    assert shown.data == {
        "application/vnd.plotly.v1+json": {},
        "text/plain": "<Figure>",
        "image/png": png,
    }


def test_main_result_is_kept_for_out_not_displayed(ip: InteractiveShell) -> None:
    out = sink()
    with capture_output() as cap:
        out.emit(Result(text="42", html="<b>42</b>", is_main_result=True))
    assert cap.outputs == []
    value = out.main_value()
    assert isinstance(value, RemoteValue)
    assert value.data == {"text/plain": "42", "text/html": "<b>42</b>"}
    assert str(value) == "42"
    assert repr(value).startswith("<RemoteValue '42': it is how a remote value looks")


def test_remote_value_becomes_out_and_underscore(ip: InteractiveShell) -> None:
    value = RemoteValue({"text/plain": "   a\n0  1", "text/html": "<table></table>"})
    ip.user_ns["remote_value"] = value
    with capture_output() as cap:
        result = ip.run_cell("remote_value", store_history=True)
    assert result.success
    assert ip.user_ns["_"] is value
    assert ip.user_ns["Out"][result.execution_count] is value
    assert "a\n0  1" in cap.stdout  # the terminal displayhook prints text/plain
    data, _ = ip.display_formatter.format(value)
    assert data["text/html"] == "<table></table>"


def test_remote_value_honours_include_and_exclude() -> None:
    value = RemoteValue({"text/plain": "x", "text/html": "<i>x</i>"}, {"text/html": {"a": 1}})
    assert value._repr_mimebundle_(include={"text/html"}) == (
        {"text/html": "<i>x</i>"},
        {"text/html": {"a": 1}},
    )
    assert value._repr_mimebundle_(exclude={"text/html"}) == ({"text/plain": "x"}, {})


def test_show_result_publishes_or_keeps_the_main_value(ip: InteractiveShell) -> None:
    out = sink()
    with capture_output() as cap:
        out.show_result(Result(text="shown"))
        out.show_result(Result(text="out", is_main_result=True))
    value = out.main_value()
    assert [o.data for o in cap.outputs] == [{"text/plain": "shown"}]
    assert value is not None
    assert value.text == "out"


def test_stream_budget_drops_the_middle_with_one_note_a_total_and_the_end(
    ip: InteractiveShell,
) -> None:
    out = sink(max_output_bytes=1024)
    with capture_output() as cap:
        for _ in range(10):
            out.emit(StreamChunk("stdout", "y" * 500))
        out.emit(StreamChunk("stdout", "z" * 100))
        out.emit(StreamChunk("stderr", "still shown\n"))
        out.main_value()
    text = cap.stdout
    # A quarter of the budget is kept for the end: 768 bytes of head, 256 of tail.
    assert text.startswith("y" * 768 + "\n… stdout reached its limit of 1.0 KB")
    assert text.count("reached its limit of 1.0 KB") == 1
    assert (
        "… 4.0 KB of stdout dropped (limit 1.0 KB: %config SandboxMagics.max_output_bytes)"
        "; its last 256 bytes follow\n" in text
    )
    assert text.endswith("y" * 156 + "z" * 100)
    assert cap.stderr == "still shown\n"


def test_stream_over_its_budget_still_shows_its_last_line(ip: InteractiveShell) -> None:
    out = sink(max_output_bytes=400_000)
    with capture_output() as cap:
        for index in range(5000):
            out.emit(StreamChunk("stdout", f"line {index:06d} " + "x" * 90 + "\n"))
        out.emit(StreamChunk("stdout", "the final line\n"))
        out.main_value()
    text = cap.stdout
    assert text.endswith("x\nthe final line\n")
    end = text[text.index("dropped (limit") :]
    assert "its last 64.0 KB follow" in end or "its last 63." in end
    assert end.split("\n")[1].startswith("line ")  # the end starts at a whole line


def test_secret_in_streams_is_redacted_even_across_chunks(ip: InteractiveShell) -> None:
    out = sink(redactor=Redactor([SECRET]))
    with capture_output() as cap:
        out.emit(StreamChunk("stdout", f"key is {SECRET}\n"))
        out.emit(StreamChunk("stdout", "split " + SECRET[:6]))
        out.emit(StreamChunk("stdout", SECRET[6:] + " done\n"))
        out.emit(StreamChunk("stdout", "tail sk-t"))
        out.close()
    assert SECRET not in cap.stdout
    assert cap.stdout == "key is [redacted]\nsplit [redacted] done\ntail sk-t"


def test_secret_in_html_output_is_redacted(ip: InteractiveShell) -> None:
    out = sink(redactor=Redactor([SECRET]))
    with capture_output() as cap:
        out.emit(Result(html=f"<b>{SECRET}</b>", text=SECRET))
    assert cap.outputs[0].data == {"text/html": "<b>[redacted]</b>", "text/plain": "[redacted]"}


def test_remote_error_keeps_colours_and_fails_the_cell(ip: InteractiveShell) -> None:
    error = ExecutionError(
        name="ZeroDivisionError",
        value=f"division by zero {SECRET}",
        traceback=(f"{RED}ZeroDivisionError\x1b[0m", f"----> 1 1/0  # {SECRET}"),
    )
    exc = sink(redactor=Redactor([SECRET])).remote_error(error, "run_1")
    assert isinstance(exc, RemoteExecutionError)
    assert exc.run_id == "run_1"
    assert exc._render_traceback_() == [
        f"{RED}ZeroDivisionError\x1b[0m",
        "----> 1 1/0  # [redacted]",
    ]
    assert SECRET not in str(exc)
    ip.user_ns["remote_exc"] = exc
    with capture_output() as cap:
        result = ip.run_cell("raise remote_exc")
    assert not result.success
    assert result.error_in_exec is exc
    assert "----> 1 1/0  # [redacted]" in cap.stdout + cap.stderr
    assert SECRET not in cap.stdout + cap.stderr


def test_huge_traceback_keeps_head_and_tail() -> None:
    lines = [f"frame {i} " + "x" * 80 for i in range(1000)]
    exc = remote_error(ExecutionError("RecursionError", "deep", tuple(lines)), "r", max_bytes=4096)
    shown = exc._render_traceback_()
    assert shown[0] == lines[0]
    assert shown[-1] == lines[-1]
    assert any("of traceback truncated" in line for line in shown)


def test_show_error_prints_the_traceback_without_raising(ip: InteractiveShell) -> None:
    out = sink()
    with capture_output() as cap:
        out.show_error(out.remote_error(ExecutionError("E", "v", ("line 1", "line 2")), "r"))
    assert cap.stderr == "line 1\nline 2\n"


def test_failed_run_error_names_id_status_and_reason() -> None:
    run = Run(id="run_9", status="failed", failure_reason="kernel died")
    error = run_error(run)
    assert type(error) is RunFailedError
    assert str(error) == "Remote run run_9 ended failed: kernel died"
    assert error.run is run


def test_timeout_says_timed_out_after_n_seconds() -> None:
    run = Run(id="run_9", status="failed", timeout_secs=5, failure_reason="exec_timeout")
    assert "timed out after 5 s" in str(run_error(run))
    already = Run(id="r", status="failed", timeout_secs=5, failure_reason="timed out after 5 s")
    assert str(run_error(already)) == "Remote run r ended failed: timed out after 5 s"


def test_a_reason_code_decides_over_the_words() -> None:
    coded = Run(
        id="r", status="failed", timeout_secs=5, failure_reason="stopped", failure_code="timed_out"
    )
    assert "timed out after 5 s (stopped)" in str(run_error(coded))
    worded_like_a_timeout = Run(
        id="r", status="failed", failure_reason="deadline of the code", failure_code="code_raised"
    )
    assert "timed out" not in str(run_error(worded_like_a_timeout))
    raised = ExecutionError(name="ValueError", value="bad", traceback=[])
    stopped = Run(
        id="r",
        status="failed",
        failure_reason="the kernel died",
        failure_code="kernel_died",
        execution=Execution(error=raised),
    )
    assert ended_by_the_service(stopped)  # the code, not the error's name, says so
    assert not ended_by_the_service(
        Run(id="r", status="failed", failure_reason="x", failure_code="code_raised")
    )


def test_cancelled_run_error() -> None:
    error = run_error(Run(id="run_3", status="cancelled", failure_reason="cancelled by user"))
    assert isinstance(error, RunCancelledError)
    assert "run_3" in str(error)
    assert "cancelled by user" in str(error)


def test_artifacts_list_has_sizes_kinds_and_links_without_credentials(ip: InteractiveShell) -> None:
    png = b"\x89PNG preview bytes"
    artifacts = [
        Artifact(
            id="a1",
            name="plot.png",
            kind="image",
            mime_type="image/png",
            size_bytes=2048,
            download_url=f"https://user:pw@api.example.test/v1/x/a1/download?token={SECRET}&v=2",
        ),
        Artifact(
            id="a2",
            name="data.csv",
            kind="file",
            size_bytes=3 * 1024 * 1024,
            download_url="/v1/sandboxes/sb/code/artifacts/a2/download",
        ),
        Artifact(id="a3", name="leak.txt", download_url=f"https://h.test/{SECRET}/x"),
    ]
    out = sink(redactor=Redactor([SECRET]))
    with capture_output() as cap:
        out.artifacts(artifacts, previews={"a1": png}, base_url="http://127.0.0.1:8765")
    [shown] = cap.outputs
    assert set(shown.data) == {"text/plain", "text/html"}
    plain, html = shown.data["text/plain"], shown.data["text/html"]
    assert "3 artifacts:" in plain
    assert "plot.png" in plain
    assert "2.0 KB" in plain
    assert "3.0 MB" in plain
    assert "image" in plain
    assert "https://api.example.test/v1/x/a1/download?v=2" in plain
    assert "http://127.0.0.1:8765/v1/sandboxes/sb/code/artifacts/a2/download" in plain
    assert SECRET not in plain + html
    assert "pw@" not in plain + html
    assert "need the API key" in plain
    assert f"data:image/png;base64,{base64.b64encode(png).decode()}" in html


def test_no_artifacts_no_output(ip: InteractiveShell) -> None:
    with capture_output() as cap:
        sink().artifacts([])
    assert cap.outputs == []


def test_notice_is_a_muted_display_output(ip: InteractiveShell) -> None:
    with capture_output() as cap:
        sink(redactor=Redactor([SECRET])).notice(f"Started server with {SECRET}")
    [shown] = cap.outputs
    assert shown.data["text/plain"] == "Started server with [redacted]"


@pytest.mark.parametrize("count", [0, 3])
def test_outputs_keep_their_order(ip: InteractiveShell, count: int) -> None:
    out = sink()
    with capture_output() as cap:
        for i in range(count):
            out.emit(StreamChunk("stdout", f"{i}\n"))
            out.emit(Result(text=f"r{i}"))
    assert [o.data["text/plain"] for o in cap.outputs] == [f"r{i}" for i in range(count)]


def test_clear_empties_outputs_and_restarts_the_stream_budget(ip: InteractiveShell) -> None:
    out = sink(max_output_bytes=1024)
    with capture_output() as cap:
        out.emit(Result(text="old"))
        out.emit(StreamChunk("stdout", "z" * 700))  # 768 bytes before the tail's share
        out.clear(wait=False)
        assert cap.outputs == []
        out.emit(StreamChunk("stdout", "fresh budget " + "w" * 700))
        out.emit(Result(text="new"))
        out.close()
    assert [o.data["text/plain"] for o in cap.outputs] == ["new"]
    assert "fresh budget " + "w" * 700 in cap.stdout
    assert "dropped" not in cap.stdout


def test_timeout_with_a_remote_keyboardinterrupt_fails_as_a_timeout() -> None:
    interrupted = Execution(error=ExecutionError("KeyboardInterrupt", "", ("KeyboardInterrupt",)))
    timed_out = Run(
        id="r1", status="failed", timeout_secs=1, failure_reason="timeout", execution=interrupted
    )
    error = sink().exception_for(timed_out)
    assert type(error) is RunFailedError
    assert "timed out after 1 s" in str(error)
    cancelled = Run(id="r2", status="cancelled", execution=interrupted)
    assert isinstance(sink().exception_for(cancelled), RunCancelledError)
    raised = Run(id="r3", status="failed", execution=interrupted)
    assert isinstance(sink().exception_for(raised), RemoteExecutionError)
    assert sink().exception_for(Run(id="r4", status="succeeded")) is None
