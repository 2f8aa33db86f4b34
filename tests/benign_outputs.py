"""Ordinary outputs the sanitiser must keep intact, made by the real libraries.

Each entry is ``(name, mime, markup)``: what a sandbox kernel would publish for
that object (pandas tables and Styler, matplotlib SVG with both font types,
IPython's Audio and Video with ``data:`` sources, Markdown with the common
constructs). Shared by the bundle tests and the browser DOM comparison.
"""

from __future__ import annotations

import io
import math
import struct
import wave

MARKDOWN = """\
# Results

> A quoted remark, with *emphasis* and `code`.

```html
<script src="app.js"></script>
<b onclick="go()">shown as code</b>
```

| name | value |
| ---- | ----: |
| a    | 1     |
| b    | 2     |

See [the docs](https://example.org/docs?a=1&b=2) and ![a dot](data:image/png;base64,iVBORw0KGgo=).

Inline math $x_1 + y^2$ and display math:

$$\\int_0^1 x\\,dx = \\frac{1}{2}$$
"""


def _wav() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        samples = (int(8000 * math.sin(i / 5)) for i in range(800))
        out.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buffer.getvalue()


def _svg(fonttype: str) -> str:
    import matplotlib

    matplotlib.use("agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": fonttype, "svg.hashsalt": "fixed"}):
        fig, ax = plt.subplots(figsize=(3, 2))
        ax.plot([1, 2, 3], [1, 4, 9], label="squares")
        ax.set_title("Growth & <limits>")
        ax.legend()
        out = io.StringIO()
        fig.savefig(out, format="svg")
        plt.close(fig)
    return out.getvalue()


def benign_outputs() -> list[tuple[str, str, str]]:
    import pandas as pd
    from IPython.display import Audio, Video

    frame = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [-3.5, 24.1]})
    styler = frame.style.highlight_max(subset=["temp"], color="yellow").format(precision=1)
    video = Video(b"\x00\x00\x00\x18ftypmp42", embed=True, mimetype="video/mp4")
    return [
        ("pandas to_html", "text/html", frame.to_html()),
        ("pandas repr", "text/html", frame._repr_html_()),
        ("pandas Styler", "text/html", styler.to_html()),
        ("matplotlib svg, fonttype path", "image/svg+xml", _svg("path")),
        ("matplotlib svg, fonttype none", "image/svg+xml", _svg("none")),
        ("IPython Audio", "text/html", Audio(_wav(), rate=8000)._repr_html_()),
        ("IPython Video", "text/html", video._repr_html_()),
        ("Markdown", "text/markdown", MARKDOWN),
    ]
