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
ACTIVE = ("<script", "onerror", "onload", 'href="javascript')


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
    assert "[click](javascript:alert(6))" in rich  # Markdown refused the link: shown as text
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


BENIGN = r"""%%sandbox
import io, math, struct, wave
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
import pandas as pd
import sympy
from IPython.display import SVG, Audio, Latex, Markdown, display

frame = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [-3.5, 24.1]})
display(frame)
display(frame.style.highlight_max(subset=["temp"], color="yellow"))
for fonttype in ("path", "none"):
    with matplotlib.rc_context({"svg.fonttype": fonttype}):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [1, 4, 9], label="squares")
        ax.set_title("Growth")
        ax.legend()
        out = io.StringIO()
        fig.savefig(out, format="svg")
        plt.close(fig)
    display(SVG(out.getvalue()))
buffer = io.BytesIO()
with wave.open(buffer, "wb") as sound:
    sound.setnchannels(1); sound.setsampwidth(2); sound.setframerate(8000)
    sound.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 5))) for i in range(800)))
display(Audio(buffer.getvalue(), rate=8000))
display(sympy.Integral(sympy.Symbol("x") ** 2, sympy.Symbol("x")))
display(Latex(r"$\alpha < \beta$ and \href{https://example.org}{a link}"))
display(Markdown("> quoted\n\n```\n<script src=app.js></script>\n```\n\n| a |\n|---|\n| 1 |"))
"""


def test_ordinary_outputs_keep_their_content_through_the_real_server(
    shell: InteractiveShell,
) -> None:
    with capture_output() as captured:
        result = shell.run_cell(BENIGN)
    assert result.success, result.error_in_exec
    bundles = [output.data for output in captured.outputs]
    html = [b["text/html"] for b in bundles if "text/html" in b]
    svgs = [b["image/svg+xml"] for b in bundles if "image/svg+xml" in b]
    assert any('class="dataframe"' in h and "<td>Oslo</td>" in h for h in html)
    assert any("<style" in h and "background-color: yellow" in h for h in html)  # Styler
    path_svg, text_svg = svgs
    assert path_svg.count("<use") > 10  # glyphs drawn as <use>: titles and tick labels
    assert "<text" in text_svg
    assert "Growth" in text_svg
    assert any('<source src="data:audio/wav;base64,' in h for h in html)
    markdown = next(h for h in html if "<blockquote>" in h)
    assert "&lt;script src=app.js&gt;&lt;/script&gt;" in markdown  # the fence keeps its code
    assert "<td>1</td>" in markdown
    latex = [b["text/latex"] for b in bundles if "text/latex" in b]
    assert latex == [
        "$\\displaystyle \\int x^{2}\\, dx$",
        "$\\alpha < \\beta$ and \\href{https://example.org}{a link}",
    ]
