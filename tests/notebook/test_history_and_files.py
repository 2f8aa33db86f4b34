"""Run history, languages and artifact integrity."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output

from sandbox_magic.client import Artifact, SavedArtifact
from sandbox_magic.notebook.controller import describe_verification


def run_cell(shell: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, captured


def test_runs_lists_history_and_filters_by_status(shell: InteractiveShell) -> None:
    run_cell(shell, "%%sandbox --out r\nprint('first')")
    ok_id = shell.user_ns["r"].id
    _failed, _ = run_cell(shell, "%%sandbox --no-raise --out r\nraise ValueError('x')")
    failed_id = shell.user_ns["r"].id
    table = shell.run_line_magic("sandbox", "runs --limit 10")
    assert ok_id in repr(table)
    assert failed_id in repr(table)
    assert "print('first')" in repr(table)  # first line of code, from the journal
    only_failed = repr(shell.run_line_magic("sandbox", "runs --status failed"))
    assert failed_id in only_failed
    assert ok_id not in only_failed
    local = repr(shell.run_line_magic("sandbox", "runs --local"))
    assert ok_id in local


def test_language_python_works_and_an_unknown_one_is_a_clear_error(
    shell: InteractiveShell,
) -> None:
    result, _ = run_cell(shell, "%%sandbox --language python --context py\n1 + 1")
    assert pretty(result.result) == "2"
    result, captured = run_cell(shell, "%%sandbox --language cobol\nDISPLAY 'HI'")
    message = str(result.error_in_exec)
    assert "cobol" in message
    assert "python" in message  # says what is offered
    assert "Traceback" not in captured.stdout + captured.stderr


def test_attach_renders_a_finished_run_again(shell: InteractiveShell) -> None:
    run_cell(shell, "%%sandbox --out r\nprint('once more')\n'value'")
    run_id = shell.user_ns["r"].id
    result, captured = run_cell(shell, f"%sandbox attach {run_id}")
    assert "once more" in captured.stdout
    assert pretty(result.result) == "'value'"


def test_preview_shows_html_sanitised_pdf_and_images_on_request(shell: InteractiveShell) -> None:
    source = (
        "%%sandbox\nfrom pathlib import Path\n"
        "Path('page.html').write_text('<h1>Report</h1><script>alert(1)</script>')\n"
        "Path('doc.pdf').write_bytes(b'%PDF-1.4 tiny')\n"
        "import matplotlib.pyplot as plt\nplt.plot([1, 2]); plt.savefig('fig.png')\n"
        "Path('notes.txt').write_text('plain words')"
    )
    assert run_cell(shell, source)[0].success
    html = shell.run_line_magic("sandbox", "preview page.html").data
    assert "<h1>Report</h1>" in html["text/html"]
    assert "<script" not in html["text/html"]
    pdf = shell.run_line_magic("sandbox", "preview doc.pdf").data
    assert base64.b64decode(pdf["application/pdf"]) == b"%PDF-1.4 tiny"
    png = shell.run_line_magic("sandbox", "preview fig.png").data
    assert base64.b64decode(png["image/png"]).startswith(b"\x89PNG")
    assert shell.run_line_magic("sandbox", "preview notes.txt").data["text/plain"] == "plain words"
    result, _ = run_cell(shell, "%sandbox preview missing.bin")
    assert "No artifact 'missing.bin'" in str(result.error_in_exec)


def test_runs_pages_through_more_runs_than_one_page(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox_magic.notebook import commands

    monkeypatch.setattr(commands, "_PAGE_SIZE", 2)  # force several pages
    ids = []
    for i in range(5):
        run_cell(shell, f"%%sandbox --quiet --out r\n{i}")
        ids.append(shell.user_ns["r"].id)
    listing = repr(shell.run_line_magic("sandbox", "runs --limit 5"))
    assert all(run_id in listing for run_id in ids)
    assert "More runs exist" not in listing
    assert "More runs exist" in repr(shell.run_line_magic("sandbox", "runs --limit 3"))


def test_the_save_notice_claims_only_the_checks_made(tmp_path: Path) -> None:
    def saved(verified: bool) -> SavedArtifact:
        return SavedArtifact(Artifact(id="a"), tmp_path / "a", 1, "0" * 64, verified)

    assert describe_verification([saved(True), saved(True)]) == "sha256 verified"
    assert describe_verification([saved(False)]) == "no sha256 from the server to verify"
    assert describe_verification([saved(True), saved(False)]).startswith(
        "sha256 verified for 1 of 2"
    )
