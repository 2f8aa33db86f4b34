"""A remote cell looks like a local one in the saved notebook (nbclient, real kernels).

One notebook holds a cell per behaviour; it is executed once against the live
server and each test reads the cell it is about.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from nbkit import RAISES, Cell, ExecutedNotebook, remote_env, run_notebook

ANSI = re.compile(r"\x1b\[[0-9;]*m")

CELLS: dict[str, Cell] = {
    "load": Cell("%load_ext sandbox_magic"),
    "local_first": Cell("x = 1  # a local cell: remote and local counts now differ"),
    "display_update": Cell(
        "%%sandbox\nimport time\nfrom IPython.display import display\n"
        "h = display('progress 0%', display_id=True)\n"
        "for i in (50, 100):\n    time.sleep(0.4)\n    h.update(f'progress {i}%')\n"
        "later = display('to be updated later', display_id=True)"
    ),
    "update_later": Cell("%%sandbox\nlater.update('updated from a later cell')"),
    "tqdm_plain": Cell(
        "%%sandbox\nimport time\nfrom tqdm import tqdm\n"
        "for _ in tqdm(range(8), desc='plain'):\n    time.sleep(0.15)\nprint('done plain')"
    ),
    "tqdm_auto": Cell(
        "%%sandbox\nimport time\nfrom tqdm.auto import tqdm\nfrom tqdm.notebook import trange\n"
        "for _ in tqdm(range(6), desc='auto'):\n    time.sleep(0.1)\n"
        "for _ in trange(3, desc='nb'):\n    pass\nprint('done auto')"
    ),
    "carriage_returns": Cell(
        "%%sandbox\nimport sys, time\nfor i in range(0, 101, 25):\n"
        "    sys.stdout.write(f'\\rdownloading {i:3d}%')\n    sys.stdout.flush()\n"
        "    time.sleep(0.15)\nprint()"
    ),
    "compact_on": Cell("%config SandboxMagics.summary = 'compact'"),
    "compact": Cell("%%sandbox\nprint('short summary')"),
    "none_on": Cell("%config SandboxMagics.summary = 'none'"),
    "no_summary": Cell("%%sandbox\nprint('no summary')"),
    "full_again": Cell("%config SandboxMagics.summary = 'full'"),
    "interleaved": Cell(
        "%%sandbox\nimport sys, time\nfor i in range(3):\n"
        "    print('warn', i, file=sys.stderr, flush=True)\n"
        "    print('tick', i, flush=True)\n    time.sleep(0.3)"
    ),
    "audio": Cell(
        "%%sandbox\nimport numpy as np\nfrom IPython.display import Audio\n"
        "Audio(np.sin(np.linspace(0, 2000, 4000)), rate=8000)"
    ),
    "scripted_html": Cell(
        "%%sandbox\nfrom IPython.display import HTML\n"
        'HTML(\'<div id="chart">chart</div><script>document.title = "owned"</script>\')'
    ),
    "altair": Cell(
        "%%sandbox\nimport altair as alt, pandas as pd\n"
        "alt.Chart(pd.DataFrame({'x': [1, 2, 3], 'y': [3, 1, 2]})).mark_line()"
        ".encode(x='x', y='y')"
    ),
    "value": Cell("%%sandbox\n41"),
    "use_value": Cell("print(_ + 1, Out[_i_value_count] == 41)"),
    "opaque": Cell("%%sandbox\nclass Thing:\n    pass\nThing()"),
    "opaque_attr": Cell("_.shape", (RAISES,)),
    "traceback": Cell("%%sandbox\ndef f():\n    return 1 / 0\n\nf()", (RAISES,)),
    "input": Cell("%%sandbox\nname = input('name? ')", (RAISES,)),
    "limit": Cell("%config SandboxMagics.max_output_bytes = 100000"),
    "long_print": Cell("%%sandbox\nprint('x' * 1_000_000)\nprint('the very last line')"),
    "limit_back": Cell("%config SandboxMagics.max_output_bytes = 10485760"),
    "dies": Cell(
        "%%sandbox --context dying\nimport os\nprint('bye', flush=True)\nos._exit(1)", (RAISES,)
    ),
    "bad_pull": Cell("%%sandbox --pull nosuchvar\nprint('shown first')\n1", (RAISES,)),
}


@pytest.fixture(scope="module")
def fidelity(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> ExecutedNotebook:
    home = tmp_path_factory.mktemp("fidelity")
    cells = [
        Cell(c.source.replace("_i_value_count", str(list(CELLS).index("value") + 1)), c.tags)
        for c in CELLS.values()
    ]
    return run_notebook(home, cells, remote_env(home, live_server), timeout=180)


def outputs(nb: ExecutedNotebook, name: str) -> list[Any]:
    return nb.outputs(list(CELLS).index(name))


def cell(nb: ExecutedNotebook, name: str) -> Any:
    return nb.cell(list(CELLS).index(name))


def stream(nb: ExecutedNotebook, name: str, which: str = "stdout") -> str:
    return "".join(
        o.text for o in outputs(nb, name) if o.output_type == "stream" and o.name == which
    )


def rendered(text: str) -> str:
    r"""What a notebook frontend shows for stream text: ``\r`` returns to the line start."""
    lines = []
    for line in text.split("\n"):
        frames = line.split("\r")
        shown = ""
        for frame in frames:
            shown = frame + shown[len(frame) :]
        lines.append(shown)
    return "\n".join(lines)


def plain(output: Any) -> str:
    return str(output.get("data", {}).get("text/plain", ""))


def is_summary(output: Any) -> bool:
    return "sandbox-magic-summary" in str(output.get("data", {}).get("text/html", ""))


# -- 1. display updates ------------------------------------------------------------------


def test_display_update_leaves_the_last_value_in_the_saved_notebook(
    fidelity: ExecutedNotebook,
) -> None:
    shown = [
        plain(o) for o in outputs(fidelity, "display_update") if o.output_type == "display_data"
    ]
    assert "'progress 100%'" in shown
    assert not any("progress 0%" in text or "progress 50%" in text for text in shown)


def test_a_later_cell_updates_the_display_of_an_earlier_one(fidelity: ExecutedNotebook) -> None:
    earlier = [plain(o) for o in outputs(fidelity, "display_update")]
    assert "'updated from a later cell'" in earlier
    later = [plain(o) for o in outputs(fidelity, "update_later") if not is_summary(o)]
    assert "'updated from a later cell'" not in later


# -- 2. progress bars ----------------------------------------------------------------------


def test_plain_tqdm_ends_at_its_final_frame_with_no_stale_frame(
    fidelity: ExecutedNotebook,
) -> None:
    shown = rendered(stream(fidelity, "tqdm_plain", "stderr"))
    bars = [line for line in shown.splitlines() if line.startswith("plain")]
    assert len(bars) == 1, shown
    assert "100%" in bars[0]
    assert "8/8" in bars[0]
    kinds = [o.output_type for o in outputs(fidelity, "tqdm_plain")]
    # one place for the status, then the streams: no display between stderr chunks
    assert kinds[0] == "display_data"
    assert "display_data" not in kinds[1:]


def test_tqdm_auto_and_notebook_give_text_bars_that_finish(fidelity: ExecutedNotebook) -> None:
    shown = rendered(stream(fidelity, "tqdm_auto", "stderr"))
    assert re.search(r"^auto: 100%.*6/6", shown, re.MULTILINE), shown
    assert re.search(r"^nb: 100%.*3/3", shown, re.MULTILINE), shown
    text = "".join(plain(o) for o in outputs(fidelity, "tqdm_auto"))
    assert "widget" not in text
    assert "done auto" in stream(fidelity, "tqdm_auto")


def test_own_carriage_return_progress_ends_at_its_last_frame(fidelity: ExecutedNotebook) -> None:
    assert rendered(stream(fidelity, "carriage_returns")) == "downloading 100%\n"


# -- 3. the status line's place --------------------------------------------------------------


def test_summary_is_the_first_output_and_streams_are_not_split(
    fidelity: ExecutedNotebook,
) -> None:
    cell_outputs = outputs(fidelity, "interleaved")
    assert is_summary(cell_outputs[0])
    assert "run time" in plain(cell_outputs[0])
    assert not any(is_summary(o) for o in cell_outputs[1:])
    assert stream(fidelity, "interleaved") == "tick 0\ntick 1\ntick 2\n"
    assert stream(fidelity, "interleaved", "stderr") == "warn 0\nwarn 1\nwarn 2\n"


def test_embedded_note_sits_above_the_first_summary(live_server: Any, tmp_path: Path) -> None:
    from nbkit import kernel_env

    executed = run_notebook(
        tmp_path, ["%load_ext sandbox_magic", "%%sandbox\nprint('hi')"], kernel_env(tmp_path)
    )
    kinds = executed.outputs(1)
    first_text = "\n".join(plain(o) for o in kinds if o.output_type == "display_data")
    assert first_text.index("Started the embedded local sandbox server") < first_text.index(
        "succeeded"
    )
    assert kinds[-1].output_type == "stream"
    assert kinds[-1].text == "hi\n"


# -- 4. media ----------------------------------------------------------------------------------


def test_audio_keeps_its_data_source(fidelity: ExecutedNotebook) -> None:
    (result,) = [o for o in outputs(fidelity, "audio") if o.output_type == "execute_result"]
    html = result.data["text/html"]
    assert re.search(r'<source src="data:audio/wav;base64,[A-Za-z0-9+/]{100}', html)
    assert "<audio" in html


def test_html_without_its_scripts_says_so(fidelity: ExecutedNotebook) -> None:
    (result,) = [o for o in outputs(fidelity, "scripted_html") if o.output_type == "execute_result"]
    html = result.data["text/html"]
    assert "<script" not in html
    assert "1 &lt;script&gt; element removed" in html
    assert "1 <script> element removed" in result.data["text/plain"]
    assert "allow_javascript = True" in result.data["text/plain"]


def test_altair_chart_arrives_as_a_vega_lite_bundle(fidelity: ExecutedNotebook) -> None:
    (result,) = [o for o in outputs(fidelity, "altair") if o.output_type == "execute_result"]
    spec = result.data["application/vnd.vegalite.v5+json"]
    assert spec["mark"]["type"] == "line" if isinstance(spec["mark"], dict) else spec["mark"]
    assert "text/html" not in result.data  # no script to strip


# -- 5. _ and Out[n] -----------------------------------------------------------------------


def test_plain_result_is_the_real_value_in_underscore_and_out(
    fidelity: ExecutedNotebook,
) -> None:
    (result,) = [o for o in outputs(fidelity, "value") if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "41"
    assert set(result.data) == {"text/plain"}
    assert stream(fidelity, "use_value") == "42 True\n"


def test_opaque_result_explains_itself_and_points_to_pull(fidelity: ExecutedNotebook) -> None:
    (error,) = [o for o in outputs(fidelity, "opaque_attr") if o.output_type == "error"]
    assert error.ename == "AttributeError"
    assert "stays in the sandbox" in error.evalue
    assert "--pull NAME" in error.evalue


# -- 6 and 7. errors ------------------------------------------------------------------------


def test_traceback_names_the_local_cell(fidelity: ExecutedNotebook) -> None:
    executed = cell(fidelity, "traceback")
    (error,) = [o for o in executed.outputs if o.output_type == "error"]
    traceback = ANSI.sub("", "\n".join(error.traceback))
    assert f"Cell In[{executed.execution_count}], line 4" in traceback
    assert f"Cell In[{executed.execution_count}], line 2, in f" in traceback


def test_remote_input_gives_a_clear_error(fidelity: ExecutedNotebook) -> None:
    (error,) = [o for o in outputs(fidelity, "input") if o.output_type == "error"]
    assert error.ename == "StdinNotImplementedError"
    assert "not available in %%sandbox cells" in error.evalue
    assert "--push NAME" in error.evalue
    assert "frontend does not support input requests" not in "\n".join(error.traceback)


# -- 8. output limits and lost output ----------------------------------------------------------


def test_truncated_output_still_shows_its_end(fidelity: ExecutedNotebook) -> None:
    text = stream(fidelity, "long_print")
    assert "reached its limit of 97.7 KB" in text
    assert text.endswith("the very last line\n")
    assert len(text) < 300_000


def test_output_printed_before_the_kernel_dies_is_kept(fidelity: ExecutedNotebook) -> None:
    assert "bye" in stream(fidelity, "dies")
    (error,) = [o for o in outputs(fidelity, "dies") if o.output_type == "error"]
    assert "died" in error.evalue


def test_failing_pull_shows_outputs_and_out_before_raising(fidelity: ExecutedNotebook) -> None:
    cell_outputs = outputs(fidelity, "bad_pull")
    assert stream(fidelity, "bad_pull") == "shown first\n"
    (result,) = [o for o in cell_outputs if o.output_type == "execute_result"]
    assert result.data["text/plain"] == "1"
    kinds = [o.output_type for o in cell_outputs]
    assert kinds.index("execute_result") < kinds.index("error")


def test_display_updates_show_while_the_cell_runs(
    live_server: Any, tmp_path: Path, kernel_factory: Any
) -> None:
    kernel = kernel_factory(remote_env(tmp_path, live_server))
    kernel.execute("%load_ext sandbox_magic")
    reply = kernel.execute(
        "%%sandbox\nimport time\nfrom IPython.display import display\n"
        "h = display('step 0', display_id=True)\n"
        "for i in (1, 2):\n    time.sleep(0.8)\n    h.update(f'step {i}')"
    )
    assert reply.status == "ok"
    shown = [
        (m["msg_type"], m["content"]["data"].get("text/plain", ""))
        for m in reply.messages
        if m["msg_type"] in ("display_data", "update_display_data")
    ]
    updates = [text for kind, text in shown if kind == "update_display_data"]
    assert "'step 1'" in updates
    assert updates[-1] != "'step 1'"
    summary_at = next(i for i, (_, text) in enumerate(shown) if "succeeded" in text)
    assert shown.index(("update_display_data", "'step 1'")) < summary_at
    assert ("update_display_data", "'step 2'") in shown


def test_compact_summary_and_no_summary(fidelity: ExecutedNotebook) -> None:
    (compact,) = [o for o in outputs(fidelity, "compact") if o.output_type == "display_data"]
    assert re.fullmatch(r"✓ \d+\.\d\d s", plain(compact))
    assert 'title="✓ succeeded in' in compact.data["text/html"]
    assert "run run_" in compact.data["text/html"]  # the ids, in the tooltip
    assert stream(fidelity, "compact") == "short summary\n"
    quiet = outputs(fidelity, "no_summary")
    assert not any(is_summary(o) for o in quiet)
    assert all(plain(o) == "" for o in quiet if o.output_type == "display_data")
    assert stream(fidelity, "no_summary") == "no summary\n"
