"""Remote HTML, SVG and Markdown are made inert unless JavaScript is allowed (real server)."""

from __future__ import annotations

from typing import Any

from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output
from testkit import magics_of

HOSTILE = (
    "%%sandbox\nfrom IPython.display import HTML, SVG, Markdown, Javascript, display\n"
    "display(HTML('<b>kept</b><script>alert(1)</script>"
    '<img src=x onerror="alert(2)"><a href="javascript:alert(3)">link</a>\'))\n'
    'display(SVG(\'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(4)</script>'
    '<circle r="1" onload="alert(5)"/></svg>\'))\n'
    "display(Markdown('[click](javascript:alert(6))'))\n"
    "display(Javascript('alert(7)'))\n"
)
ACTIVE = ("<script", "onerror", "onload", "javascript:alert")


def _markup(ip: InteractiveShell) -> list[dict[str, Any]]:
    with capture_output() as captured:
        result = ip.run_cell(HOSTILE)
    assert result.success, result.error_in_exec
    return [output.data for output in captured.outputs]


def _rich(bundles: list[dict[str, Any]]) -> str:
    keys = ("text/html", "image/svg+xml", "text/markdown", "application/javascript")
    return "\n".join(str(b[k]) for b in bundles for k in keys if k in b)


def test_remote_scripts_and_handlers_are_inert_by_default(shell: InteractiveShell) -> None:
    bundles = _markup(shell)
    rich = _rich(bundles)
    assert "<b>kept</b>" in rich
    assert "<circle" in rich
    for active in ACTIVE:
        assert active not in rich.lower(), active
    assert not any("application/javascript" in b for b in bundles)
    assert any("alert(7)" in b.get("text/plain", "") for b in bundles)  # shown as text


def test_allow_javascript_lets_the_remote_markup_through(shell: InteractiveShell) -> None:
    magics_of(shell).allow_javascript = True
    bundles = _markup(shell)
    rich = _rich(bundles)
    assert "<script>alert(1)</script>" in rich
    assert 'onerror="alert(2)"' in rich
    assert any(b.get("application/javascript") == "alert(7)" for b in bundles)
