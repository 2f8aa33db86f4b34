"""What an executed notebook keeps on disk: no widget payloads, no key, static summaries."""

from __future__ import annotations

import json
import re

from nbkit import Showcase

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_saved_notebook_holds_no_widget_payloads(showcase: Showcase) -> None:
    assert WIDGET_VIEW not in showcase.executed.text
    assert "widgets" not in json.loads(showcase.executed.text)["metadata"]
    for cell in showcase.executed.notebook.cells:
        for output in cell.get("outputs", []):
            assert WIDGET_VIEW not in output.get("data", {})


def test_api_key_appears_nowhere_in_the_saved_file(showcase: Showcase) -> None:
    assert len(showcase.token) >= 16
    assert showcase.token not in showcase.executed.text
    # The cells that could have leaked it did run and show what they should:
    config = showcase.stdout("config")
    assert "SandboxMagics.api_key" in config
    status = "".join(b["text/plain"] for b in showcase.bundles("status"))
    assert "set (hidden)" in status


def test_status_subcommand_shows_the_url_but_not_the_key(showcase: Showcase) -> None:
    (bundle,) = showcase.bundles("status")
    url = re.search(r"http://127\.0\.0\.1:\d+", bundle["text/plain"])
    assert url is not None
    assert url.group(0) in bundle["text/html"]
    assert "health" in bundle["text/plain"]
    assert "ok" in bundle["text/plain"]


def test_unreachable_server_fails_the_cell_naming_the_url_only(showcase: Showcase) -> None:
    (error,) = [o for o in showcase.outputs("unreachable") if o.output_type == "error"]
    assert "http://127.0.0.1:9" in error.evalue
    assert "Traceback" not in "\n".join(error.traceback)
    # no live status line is left behind by a run that never started
    for bundle in showcase.bundles("unreachable"):
        assert "submitting" not in bundle.get("text/plain", "")


def test_slow_run_leaves_a_static_summary_with_its_run_id(showcase: Showcase) -> None:
    run_id = showcase.stdout("slow_id").strip()
    assert run_id.startswith("run_")
    outputs = showcase.outputs("slow")
    displays = [o for o in outputs if o.output_type == "display_data"]
    (summary,) = displays
    assert set(summary.data) == {"text/plain", "text/html"}
    assert run_id in summary.data["text/plain"]
    assert run_id in summary.data["text/html"]
    assert "succeeded" in summary.data["text/plain"]
    assert "sandbox-magic-summary" in summary.data["text/html"]
    # The live view appeared while the run went on (its output sits between the
    # prints) and was replaced in place, not appended at the end.
    ticks = [i for i, o in enumerate(outputs) if "tick 2" in o.get("text", "")]
    assert ticks
    assert outputs.index(summary) < ticks[0]


def test_no_live_status_line_survives_in_the_saved_notebook(showcase: Showcase) -> None:
    assert "sandbox-magic-status" not in showcase.executed.text
    for cell in showcase.executed.notebook.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            assert not text.startswith("●"), text
