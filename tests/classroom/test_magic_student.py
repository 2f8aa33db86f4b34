"""The magic with a student's key: status shows its name and quotas; quota errors read well."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output


def _run(shell: InteractiveShell, source: str) -> tuple[Any, str]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    parts = [captured.stdout, captured.stderr]
    parts += [o.data.get("text/plain", "") for o in captured.outputs]
    if result.result is not None:
        parts += [repr(result.result), getattr(result.result, "_repr_html_", str)()]
    return result, "\n".join(parts)


@pytest.fixture
def student_shell(
    ip, live_server, make_student, tmp_path
) -> Iterator[tuple[InteractiveShell, Any]]:
    student = make_student({"run_timeout": 300, "contexts": 1})
    ip.run_line_magic("load_ext", "sandbox_magic")
    magics = ip._sandbox_magics
    magics.api_url = live_server.url
    magics.api_key = student.key
    magics.journal_path = str(tmp_path / "journal.jsonl")
    magics.status_delay = 0.2
    magics.keep_sandbox = False
    yield ip, student
    ip.run_line_magic("unload_ext", "sandbox_magic")


def test_status_shows_the_key_name_and_quotas_never_the_key(student_shell) -> None:
    shell, student = student_shell
    result, text = _run(shell, "%%sandbox\n40 + 2")
    assert result.error_in_exec is None
    assert "42" in text
    _, text = _run(shell, "%sandbox status")
    assert f"{student.name} (student)" in text
    assert "contexts 1 of 1" in text
    assert "sandboxes 1 of 2" in text
    assert "longest run 300 s" in text
    assert student.key not in text


def test_quota_errors_read_well_in_a_cell(student_shell) -> None:
    shell, _ = student_shell
    result, text = _run(shell, "%%sandbox --timeout 600\n1")
    error = result.error_in_exec
    assert error is not None
    message = str(error)
    assert "Quota 'run_timeout' exceeded: a run may take at most 300 s" in message
    assert "NULLSPACE_API_KEY" not in message  # not worded as a wrong key
    assert "quota_exceeded" in message
    assert "Traceback" not in text
    # a second context would pass the contexts quota: refused, named, and the first still works
    result, _ = _run(shell, "%%sandbox --context second\n1")
    assert "Quota 'contexts' exceeded" in str(result.error_in_exec)
    result, text = _run(shell, "%%sandbox\n'still fine'")
    assert result.error_in_exec is None
    assert "still fine" in text
