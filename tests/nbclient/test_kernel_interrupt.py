"""The notebook's stop button (a kernel interrupt) cancels the remote run, reliably."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbkit import KernelSession, remote_env

LONG_LOOP = (
    "%%sandbox --out loop\n"
    "import time\n"
    "for i in range(600):\n"
    "    print('progress', i, flush=True)\n"
    "    time.sleep(0.1)\n"
)


def _is_progress(message: dict[str, Any]) -> bool:
    return message["msg_type"] == "stream" and "progress" in message["content"]["text"]


def test_interrupt_cancels_the_remote_run_and_the_context_stays_usable(
    live_server: Any, tmp_path: Path, kernel_factory: Callable[..., KernelSession]
) -> None:
    kernel = kernel_factory(remote_env(tmp_path, live_server))
    assert kernel.execute("%load_ext sandbox_magic").status == "ok"
    before = kernel.execute("%%sandbox\nkept_before = 41")
    assert before.status == "ok", before.text()
    seen_runs: set[str] = set()
    with live_server.client() as http:
        for attempt in range(3):
            msg_id = kernel.send(LONG_LOOP)
            messages: list[dict[str, Any]] = []
            stopped_early = kernel.collect(msg_id, timeout=60, until=_is_progress, into=messages)
            assert stopped_early is None, "the loop ended before printing any progress"
            kernel.manager.interrupt_kernel()
            reply = kernel.collect(msg_id, timeout=60, into=messages)
            assert reply is not None
            assert reply.status == "error", f"attempt {attempt}: {reply.text()}"
            assert "cancelled" in reply.error, reply.error

            record = kernel.execute("print(loop.sandbox_id, loop.id)")
            sandbox_id, run_id = record.stream().split()
            assert run_id in reply.error
            assert run_id not in seen_runs
            seen_runs.add(run_id)
            remote = http.get(f"/v1/sandboxes/{sandbox_id}/code/runs/{run_id}")
            remote.raise_for_status()
            assert remote.json()["status"] == "cancelled"

            after = kernel.execute("%%sandbox\nkept_before + 1")
            assert after.status == "ok", after.text()
            assert after.result == "42"


def test_headless_kernel_shows_live_html_status_then_replaces_it_in_place(
    live_server: Any, tmp_path: Path, kernel_factory: Callable[..., KernelSession]
) -> None:
    kernel = kernel_factory(remote_env(tmp_path, live_server))
    kernel.execute("%load_ext sandbox_magic")
    reply = kernel.execute(
        "%%sandbox --out slow\nimport time\nprint('start', flush=True)\ntime.sleep(1.5)\n'done'"
    )
    assert reply.status == "ok", reply.text()
    assert reply.result == "'done'"
    kinds = [m["msg_type"] for m in reply.messages]
    assert "comm_open" not in kinds  # no widget in a kernel executing without stdin
    # The status line holds the cell's first output slot from the start and shows
    # the live status there (possibly after a placeholder), updated in place.
    shown = [m["content"] for m in reply.messages if m["msg_type"] == "display_data"]
    assert shown, f"no status line was shown: {kinds}"
    display_id = shown[0]["transient"]["display_id"]
    updates = [
        m["content"]
        for m in reply.messages
        if m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
    ]
    live = [
        u for u in [shown[0], *updates] if "sandbox-magic-status" in u["data"].get("text/html", "")
    ]
    assert live, f"no live status line was shown: {kinds}"
    states = [u["data"]["text/plain"] for u in live]
    assert any("running" in state for state in states), states
    final = updates[-1]["data"]
    assert set(final) == {"text/plain", "text/html"}
    run_id = kernel.execute("print(slow.id)").stream().strip()
    assert run_id in final["text/plain"]
    assert "succeeded" in final["text/plain"]
