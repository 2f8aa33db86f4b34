"""Status views: appear only after the delay, replaced in place by a static summary."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from sandbox_magic.client import Execution, ExecutionError, Run
from sandbox_magic.notebook.status import (
    HtmlStatusView,
    NullStatusView,
    RunSummary,
    TextStatusView,
    WidgetStatusView,
    detect_headless,
    make_status_view,
)
from sandbox_magic.render.redact import Redactor

WIDGET = "application/vnd.jupyter.widget-view+json"
SECRET = "sk-status-secret-value"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def run(status: str = "running", **kwargs: Any) -> Run:
    return Run(id="run_ab12", status=status, sandbox_id="sb_x", context_id="ctx_1", **kwargs)


def test_widget_view_shows_nothing_before_the_delay(ip: InteractiveShell, clock: FakeClock) -> None:
    view = WidgetStatusView(delay=0.5, clock=clock)
    with capture_output() as cap:
        view.tick()
        view.start(run("queued"), context="default")
        clock.advance(0.3)
        view.update(run(), "working")
        view.tick()
    assert cap.outputs == []


def test_fast_run_leaves_only_the_summary(ip: InteractiveShell, clock: FakeClock) -> None:
    view = WidgetStatusView(delay=0.5, clock=clock)
    with capture_output() as cap:
        view.start(run("queued"), context="default")
        clock.advance(0.42)
        view.finish(run("succeeded"))
    [summary] = cap.outputs
    assert set(summary.data) == {"text/plain", "text/html"}
    assert summary.data["text/plain"] == (
        "✓ succeeded in 0.42 s · run run_ab12 · sandbox sb_x · context default"
    )
    assert not summary.update


def test_widget_is_replaced_in_place_by_a_static_summary(
    ip: InteractiveShell, clock: FakeClock
) -> None:
    view = WidgetStatusView(delay=0.5, clock=clock)
    with capture_output() as cap:
        view.start(run("queued"), context="default")
        clock.advance(0.6)
        view.tick()
        widget_html = view._html
        view.update(run(), "step 3 of 10")
        assert "step 3 of 10" in widget_html.value
        assert "running" in widget_html.value
        clock.advance(2.0)
        view.tick()
        assert "running · 2 s ·" in widget_html.value
        view.finish(run("succeeded"))
    first, final = cap.outputs
    assert WIDGET in first.data
    display_id = first.transient["display_id"]
    assert final.update is True
    assert final.transient == {"display_id": display_id}
    assert set(final.data) == {"text/plain", "text/html"}
    assert final.data["text/plain"].startswith("✓ succeeded in 2.60 s · run run_ab12")
    assert view._box is None  # widgets closed, nothing left to save


def test_widget_cancel_button_and_cancelling_state(ip: InteractiveShell, clock: FakeClock) -> None:
    clicked: list[bool] = []
    view = WidgetStatusView(delay=0.0, clock=clock)
    with capture_output():
        view.start(run())
        button = view._button
        assert button.layout.display == "none"  # hidden until a callback is wired
        view.on_cancel = lambda: clicked.append(True)
        assert button.layout.display is None
        button.click()
        view.cancelling()
        assert "cancelling" in view._html.value
        assert button.layout.display == "none"
        view.finish(run("cancelled", failure_reason="cancelled by user"))
    assert clicked == [True]


def test_status_never_shows_secrets(ip: InteractiveShell, clock: FakeClock) -> None:
    view = WidgetStatusView(delay=0.0, clock=clock, redactor=Redactor([SECRET]))
    with capture_output() as cap:
        view.start(run())
        clock.advance(1.0)
        view.update(run(), f"token={SECRET}")
        assert SECRET not in view._html.value
        assert "[redacted]" in view._html.value
        view.finish(run("failed", failure_reason=f"bad key {SECRET}"))
    assert SECRET not in str([o.data for o in cap.outputs])


def test_latest_line_is_trimmed(clock: FakeClock) -> None:
    view = NullStatusView(clock=clock)
    view.update(run(), "z" * 500)
    assert view.latest_line is not None
    assert len(view.latest_line) == 100


def test_updates_from_another_thread(ip: InteractiveShell, clock: FakeClock) -> None:
    view = WidgetStatusView(delay=0.0, clock=clock)
    with capture_output() as cap:
        view.start(run())
        clock.advance(1.0)
        worker = threading.Thread(target=lambda: view.update(run(), "from a thread"))
        worker.start()
        worker.join()
        assert "from a thread" in view._html.value
        view.finish(run("succeeded"))
    assert len(cap.outputs) == 2


def test_html_view_updates_in_place_rate_limited(ip: InteractiveShell, clock: FakeClock) -> None:
    view = HtmlStatusView(delay=0.5, min_interval=1.0, clock=clock)
    with capture_output() as cap:
        view.start(run("queued"))
        clock.advance(0.5)
        view.tick()  # appears
        clock.advance(0.2)
        view.tick()  # too soon, same state: skipped
        view.update(run(), None)  # state change: drawn
        clock.advance(1.0)
        view.tick()  # interval passed: drawn
        view.finish(run("succeeded"))
    outputs = cap.outputs
    assert len(outputs) == 4
    display_id = outputs[0].transient["display_id"]
    assert all(o.transient == {"display_id": display_id} for o in outputs)
    assert [o.update for o in outputs] == [False, True, True, True]
    assert all(set(o.data) == {"text/plain", "text/html"} for o in outputs)
    assert "queued" in outputs[0].data["text/plain"]
    assert outputs[-1].data["text/plain"].startswith("✓ succeeded")


def test_text_view_writes_rate_limited_lines_and_a_summary(
    ip: InteractiveShell, clock: FakeClock
) -> None:
    view = TextStatusView(delay=0.5, interval=10.0, clock=clock)
    with capture_output() as cap:
        view.start(run("queued"), context="default")
        view.tick()  # before the delay: nothing
        clock.advance(1.0)
        for _ in range(20):
            view.update(run(), "progress")  # queued -> running: one line, then quiet
            clock.advance(0.1)
        clock.advance(10.0)
        view.tick()
        view.finish(run("succeeded"))
    lines = cap.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("[sandbox] ● running · 1 s · run run_ab12")
    assert lines[0].endswith("· progress")
    [summary] = cap.outputs
    assert summary.data["text/plain"].startswith("✓ succeeded in 13.0 s")


def test_null_view_shows_nothing(ip: InteractiveShell, clock: FakeClock) -> None:
    view = NullStatusView(clock=clock)
    with capture_output() as cap:
        view.start(run())
        clock.advance(5)
        view.tick()
        view.finish(run("succeeded"))
    assert cap.outputs == []
    assert cap.stdout == ""
    assert cap.stderr == ""


@pytest.mark.parametrize(
    ("final", "expected"),
    [
        (run("succeeded"), "✓ succeeded in 1.50 s"),
        (
            run("failed", failure_reason="exec_timeout", timeout_secs=5),
            "✗ failed in 1.50 s (timed out after 5 s (exec_timeout))",
        ),
        (
            run("cancelled", failure_reason="cancelled by user"),
            "■ cancelled in 1.50 s (cancelled by user)",
        ),
        (
            run("succeeded", execution=Execution(error=ExecutionError("KeyError", "'a'"))),
            "✗ raised KeyError in 1.50 s",
        ),
    ],
)
def test_summary_lines(final: Run, expected: str) -> None:
    summary = RunSummary.from_run(final, duration=1.5, context="default")
    assert summary.text() == f"{expected} · run run_ab12 · sandbox sb_x · context default"
    assert summary.bundle()["text/html"].count("<code>") == 3


def test_summary_falls_back_to_context_id() -> None:
    assert RunSummary.from_run(run("succeeded")).text().endswith("context ctx_1")


class ZMQInteractiveShell:
    """Stands in for ipykernel's shell (detection looks at the class name)."""

    def __init__(self, allow_stdin: bool = True) -> None:
        self.kernel = type("Kernel", (), {"_allow_stdin": allow_stdin})()


def test_choice_of_view(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SANDBOX_MAGIC_HEADLESS", raising=False)
    assert isinstance(make_status_view(ip), TextStatusView)  # terminal shell
    assert isinstance(make_status_view(ZMQInteractiveShell()), WidgetStatusView)
    assert isinstance(make_status_view(ZMQInteractiveShell(allow_stdin=False)), HtmlStatusView)
    assert isinstance(make_status_view(ZMQInteractiveShell(), quiet=True), NullStatusView)
    assert isinstance(make_status_view(ip, mode="html"), HtmlStatusView)
    assert isinstance(make_status_view(ip, mode="widget"), WidgetStatusView)
    assert isinstance(make_status_view(ZMQInteractiveShell(), headless=True), HtmlStatusView)
    monkeypatch.setenv("SANDBOX_MAGIC_HEADLESS", "1")
    assert isinstance(make_status_view(ZMQInteractiveShell()), HtmlStatusView)


def test_headless_detection() -> None:
    assert detect_headless(ZMQInteractiveShell(allow_stdin=False), {}) is True
    assert detect_headless(ZMQInteractiveShell(allow_stdin=True), {}) is False
    assert (
        detect_headless(ZMQInteractiveShell(allow_stdin=False), {"SANDBOX_MAGIC_HEADLESS": "0"})
        is False
    )
    assert detect_headless(object(), {"SANDBOX_MAGIC_HEADLESS": "yes"}) is True
    assert detect_headless(object(), {}) is False


def test_view_shows_itself_again_after_outputs_are_cleared(
    ip: InteractiveShell, clock: FakeClock
) -> None:
    view = WidgetStatusView(delay=0.0, clock=clock)
    with capture_output() as cap:
        view.start(run())
        first_id = cap.outputs[0].transient["display_id"]
        ip.display_pub.clear_output()
        view.outputs_cleared()
        view.tick()
        view.finish(run("succeeded"))
    shown, summary = cap.outputs
    assert WIDGET in shown.data
    assert shown.transient["display_id"] != first_id
    assert summary.transient == shown.transient
    assert set(summary.data) == {"text/plain", "text/html"}


def test_summary_of_a_timed_out_run_names_the_timeout_not_the_interrupt() -> None:
    final = run(
        "failed",
        timeout_secs=2,
        failure_reason="timed out after 2 s",
        execution=Execution(error=ExecutionError("KeyboardInterrupt", "")),
    )
    assert (
        RunSummary.from_run(final, duration=2.1)
        .text()
        .startswith("✗ failed in 2.10 s (timed out after 2 s)")
    )


def test_widget_redraws_are_throttled(ip: InteractiveShell, clock: FakeClock) -> None:
    view = WidgetStatusView(delay=0.0, min_interval=0.25, clock=clock)
    with capture_output():
        view.start(run())
        view.update(run(), "first")
        assert "first" not in view._html.value  # within 0.25 s of the last draw
        clock.advance(0.3)
        view.tick()
        assert "first" in view._html.value
        view.cancelling()  # a state change is drawn at once
        assert "cancelling" in view._html.value
        view.finish(None)
