"""%%sandbox through a real IPython shell against the real local server and real kernels."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.lib.pretty import pretty
from IPython.utils.capture import capture_output
from testkit import magics_of

from sandbox_magic.client import RemoteExecutionError, Run, RunFailedError


def run_cell(shell: InteractiveShell, source: str) -> tuple[Any, Any]:
    with capture_output() as captured:
        result = shell.run_cell(source)
    return result, captured


def bundles(captured: Any) -> list[dict[str, Any]]:
    return [output.data for output in captured.outputs]


def test_print_and_last_expression_become_stdout_and_out(shell: InteractiveShell) -> None:
    result, captured = run_cell(shell, "%%sandbox\nprint('hello from afar')\n6 * 7")
    assert result.success, result.error_in_exec
    assert "hello from afar\n" in captured.stdout
    assert pretty(result.result) == "42"
    assert shell.user_ns["_"] is result.result


def test_state_persists_in_a_context_and_contexts_are_isolated(shell: InteractiveShell) -> None:
    run_cell(shell, "%%sandbox\nsecret_number = 17")
    result, _ = run_cell(shell, "%%sandbox\nsecret_number + 1")
    assert pretty(result.result) == "18"
    result, _captured = run_cell(shell, "%%sandbox --context other\n'secret_number' in globals()")
    assert pretty(result.result) == "False"


def test_stdout_and_displays_interleave_in_order(shell: InteractiveShell) -> None:
    source = (
        "%%sandbox\nfrom IPython.display import display, HTML\nimport sys\n"
        "print('first', flush=True)\ndisplay(HTML('<b>middle</b>'))\n"
        "print('last', flush=True)\nprint('to stderr', file=sys.stderr)\n"
    )
    result, captured = run_cell(shell, source)
    assert result.success
    assert captured.stdout.index("first") < captured.stdout.index("last")
    assert "to stderr" in captured.stderr
    assert any(b.get("text/html") == "<b>middle</b>" for b in bundles(captured))


def test_every_rich_type_keeps_its_whole_bundle(shell: InteractiveShell) -> None:
    pdf = base64.b64encode(b"%PDF-1.4 tiny").decode()
    source = (
        "%%sandbox\nfrom IPython.display import display, Markdown, Latex, SVG, JSON, HTML\n"
        "display(Markdown('**bold**'))\n"
        "display(Latex(r'$\\alpha^2$'))\n"
        'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"></svg>\'))\n'
        "display(JSON({'a': [1, 2]}))\n"
        "display({'application/vnd.plotly.v1+json': {'data': [{'y': [1, 3]}]},"
        " 'text/plain': 'a plotly figure'}, raw=True)\n"
        f"display({{'application/pdf': '{pdf}', 'text/plain': 'a pdf'}}, raw=True)\n"
        "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9]); plt.show()\n"
    )
    result, captured = run_cell(shell, source)
    assert result.success, result.error_in_exec
    found = bundles(captured)
    # Markdown arrives rendered to sanitised HTML, its source as the text form.
    assert any(
        b.get("text/html") == "<p><strong>bold</strong></p>\n" and b["text/plain"] == "**bold**"
        for b in found
    )
    assert any("\\alpha" in b.get("text/latex", "") for b in found)
    assert any("<svg" in b.get("image/svg+xml", "") for b in found)
    assert any(b.get("application/json") == {"a": [1, 2]} for b in found)
    assert any("application/vnd.plotly.v1+json" in b for b in found)
    assert any(b.get("application/pdf") == pdf for b in found)
    png = next(b["image/png"] for b in found if "image/png" in b)
    assert base64.b64decode(png).startswith(b"\x89PNG")


def test_javascript_is_shown_as_text_unless_allowed(shell: InteractiveShell) -> None:
    source = "%%sandbox\nfrom IPython.display import Javascript\ndisplay(Javascript('alert(1)'))"
    _, captured = run_cell(shell, source)
    assert not any("application/javascript" in b for b in bundles(captured))
    assert any("alert(1)" in b.get("text/plain", "") for b in bundles(captured))
    magics_of(shell).allow_javascript = True
    _, captured = run_cell(shell, source)
    assert any(b.get("application/javascript") == "alert(1)" for b in bundles(captured))


def test_remote_exception_fails_the_cell_with_the_remote_traceback(
    shell: InteractiveShell,
) -> None:
    result, captured = run_cell(shell, "%%sandbox\ndef f():\n    return 1 / 0\nf()")
    assert isinstance(result.error_in_exec, RemoteExecutionError)
    assert result.error_in_exec.name == "ZeroDivisionError"
    shown = captured.stdout + captured.stderr
    assert "ZeroDivisionError" in shown
    assert "f()" in shown
    assert "sandbox_magic" not in shown  # no local, internal frames


def test_no_raise_shows_the_error_but_the_cell_succeeds(shell: InteractiveShell) -> None:
    result, captured = run_cell(shell, "%%sandbox --no-raise\nraise ValueError('shown only')")
    assert result.success
    assert "ValueError" in captured.stderr
    assert "shown only" in captured.stderr


def test_timeout_fails_the_cell_and_says_so(shell: InteractiveShell) -> None:
    result, _ = run_cell(shell, "%%sandbox --timeout 1\nimport time\nwhile True: time.sleep(0.05)")
    assert isinstance(result.error_in_exec, RunFailedError)
    assert "timed out after 1 s" in str(result.error_in_exec)
    after, _ = run_cell(shell, "%%sandbox\n'still usable'")
    assert pretty(after.result) == "'still usable'"


def test_out_stores_the_run_record(shell: InteractiveShell) -> None:
    result, _ = run_cell(shell, "%%sandbox --out r\nprint('kept')\n2 + 2")
    assert result.success
    record = shell.user_ns["r"]
    assert isinstance(record, Run)
    assert record.status == "succeeded"
    assert record.execution.logs.stdout == ("kept\n",)
    assert record.execution.main_result is not None
    assert record.execution.main_result.text == "4"
    assert record.id.startswith("run")


def test_env_values_reach_the_run(shell: InteractiveShell) -> None:
    result, _ = run_cell(shell, "%%sandbox --env GREETING=hej\nimport os\nos.environ['GREETING']")
    assert pretty(result.result) == "'hej'"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--timeout -3", "--timeout must be a positive"),
        ("--env NOEQUALS", "--env takes KEY=VALUE"),
        ("--out 'not a name'", "--out takes a Python variable name"),
        ("--secret-env SURELY_NOT_SET_ANYWHERE", "no environment variable"),
        ("--no-such-option", "unrecognized arguments"),
    ],
)
def test_bad_options_give_a_usage_error(shell: InteractiveShell, line: str, message: str) -> None:
    result, captured = run_cell(shell, f"%%sandbox {line}\n1")
    assert not result.success
    assert message in (captured.stdout + captured.stderr + str(result.error_in_exec))


def test_wrong_key_is_a_clear_error_without_the_key(
    shell: InteractiveShell, live_server: Any
) -> None:
    magics_of(shell).api_key = "definitely-wrong-key"
    result, captured = run_cell(shell, "%%sandbox\n1")
    text = captured.stdout + captured.stderr + str(result.error_in_exec)
    assert "HTTP 401" in text
    assert "%config SandboxMagics.api_key" in text  # the notebook's hint
    assert "definitely-wrong-key" not in text
    assert "Traceback" not in text


def test_unreachable_server_names_the_url(shell: InteractiveShell) -> None:
    magics_of(shell).api_url = "http://127.0.0.1:9"
    result, captured = run_cell(shell, "%%sandbox\n1")
    text = captured.stdout + captured.stderr + str(result.error_in_exec)
    assert "Cannot reach the sandbox server at http://127.0.0.1:9" in text
    assert "`%sandbox status`" in text


def test_no_server_at_all_names_the_notebook_commands(shell: InteractiveShell) -> None:
    magics = magics_of(shell)
    magics.api_url, magics.embedded = None, False
    result, captured = run_cell(shell, "%%sandbox\n1")
    text = captured.stdout + captured.stderr + str(result.error_in_exec)
    assert "No sandbox server is configured" in text
    assert "%sandbox connect URL" in text
    assert "SandboxMagics.embedded = True" in text
    assert "Traceback" not in text


def test_config_listing_never_shows_the_key(shell: InteractiveShell, live_server: Any) -> None:
    with capture_output() as captured:
        shell.run_line_magic("config", "SandboxMagics")
    assert live_server.token not in captured.stdout
    value = shell.run_line_magic("config", "SandboxMagics.api_key")
    assert live_server.token not in repr(value)
