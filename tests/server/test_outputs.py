"""What a run's execution carries: streams, rich results, errors, order, envs."""

from __future__ import annotations

import base64

from sandbox_magic.client import Run


def test_stdout_stderr_and_main_result(sbx) -> None:
    ctx = sbx.context()
    run = sbx.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7", ctx)
    assert run["status"] == "succeeded"
    assert run["failure_reason"] is None
    execution = run["execution"]
    assert "".join(execution["logs"]["stdout"]) == "out\n"
    assert "".join(execution["logs"]["stderr"]) == "err\n"
    [result] = execution["results"]
    assert result["is_main_result"] is True
    assert result["text"] == "42"
    assert result["data"] == {"text/plain": "42"}
    assert execution["execution_count"] == 1
    parsed = Run.from_json(run)
    assert parsed.execution.main_result is not None


def test_matplotlib_figure_comes_back_as_png_without_setup(sbx) -> None:
    ctx = sbx.context()
    code = "import matplotlib.pyplot as plt\nplt.plot([1, 4, 9])\nplt.show()"
    run = sbx.run(code, ctx)
    assert run["status"] == "succeeded", run
    [result] = run["execution"]["results"]
    assert result["is_main_result"] is False
    png = base64.b64decode(result["png"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert result["data"]["image/png"] == result["png"]
    assert "Figure" in result["text"]


def test_dataframe_is_html_and_sympy_is_latex(sbx) -> None:
    ctx = sbx.context()
    frame = sbx.run("import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})", ctx)
    [table] = frame["execution"]["results"]
    assert table["is_main_result"] is True
    assert "<table" in table["html"]
    assert table["data"]["text/html"] == table["html"]
    expr = sbx.run("import sympy\nx = sympy.Symbol('x')\nsympy.sqrt(x) / 2", ctx)
    [maths] = expr["execution"]["results"]
    assert "\\sqrt{x}" in maths["latex"]
    assert maths["data"]["text/latex"] == maths["latex"]


def test_every_mime_type_passes_through_and_known_ones_get_fields(sbx) -> None:
    ctx = sbx.context()
    code = (
        "from IPython.display import display\n"
        "display({'text/plain': 'p', 'text/markdown': '**m**', 'image/svg+xml': '<svg/>',\n"
        "         'application/json': {'k': [1]}, 'application/javascript': 'void 0',\n"
        "         'text/latex': '$x$', 'application/vnd.vegalite.v5+json': {'mark': 'bar'}},\n"
        "        raw=True)"
    )
    run = sbx.run(code, ctx)
    [result] = run["execution"]["results"]
    assert result["markdown"] == "**m**"
    assert result["svg"] == "<svg/>"
    assert result["json"] == {"k": [1]}
    assert result["javascript"] == "void 0"
    assert result["latex"] == "$x$"
    assert result["data"]["application/vnd.vegalite.v5+json"] == {"mark": "bar"}


def test_output_order_interleaves_prints_and_displays(sbx) -> None:
    ctx = sbx.context()
    code = (
        "from IPython.display import display, HTML\n"
        "import sys\n"
        "print('one', flush=True)\n"
        "display(HTML('<b>two</b>'))\n"
        "print('three', file=sys.stderr, flush=True)\n"
        "print('four', flush=True)\n"
        "'five'"
    )
    run = sbx.run(code, ctx)
    execution = run["execution"]
    kinds = [ref["type"] for ref in execution["output_order"]]
    assert kinds == ["stdout", "result", "stderr", "stdout", "result"]
    texts = []
    for ref in execution["output_order"]:
        if ref["type"] == "result":
            texts.append(execution["results"][ref["index"]]["text"])
        else:
            texts.append(execution["logs"][ref["type"]][ref["index"]].strip())
    assert texts[0] == "one"
    assert texts[2] == "three"
    assert texts[3] == "four"
    assert texts[4] == "'five'"


def test_update_display_replaces_in_place_and_clear_output_leaves_order(sbx) -> None:
    ctx = sbx.context()
    code = (
        "from IPython.display import display, clear_output\n"
        "h = display('first', display_id=True)\n"
        "h.update('second')\n"
        "print('gone', flush=True)\n"
        "clear_output()\n"
        "print('kept', flush=True)\n"
    )
    run = sbx.run(code, ctx)
    execution = run["execution"]
    [shown] = execution["results"]
    assert shown["text"] == "'second'"
    assert execution["logs"]["stdout"] == ["gone\n", "kept\n"]
    assert execution["output_order"] == [{"type": "stdout", "index": 1}]


def test_exception_fails_the_run_with_error_and_traceback(sbx) -> None:
    ctx = sbx.context()
    run = sbx.run("print('before')\nundefined_name", ctx)
    assert run["status"] == "failed"
    assert run["failure_reason"].startswith("the code raised NameError")
    assert run["failure_code"] == "code_raised"
    error = run["execution"]["error"]
    assert error["name"] == "NameError"
    assert "undefined_name" in error["value"]
    assert isinstance(error["traceback"], list)
    assert len(error["traceback"]) > 1
    assert any("\x1b[" in line for line in error["traceback"])  # colours kept
    assert run["execution"]["logs"]["stdout"] == ["before\n"]
    assert sbx.run("1 + 1", ctx)["status"] == "succeeded"  # the context goes on


def test_run_envs_apply_to_that_run_only(sbx) -> None:
    ctx = sbx.context()
    code = "import os\nprint(os.environ.get('SM_A'), os.environ.get('HOME') == 'x')"
    with_envs = sbx.run(code, ctx, envs={"SM_A": "1", "HOME": "x"})
    # Joined: under load the kernel may flush one print as two stream chunks.
    assert "".join(with_envs["execution"]["logs"]["stdout"]) == "1 True\n"
    after = sbx.run(code, ctx)
    assert "".join(after["execution"]["logs"]["stdout"]) == "None False\n"


def test_sandbox_envs_reach_every_context(api) -> None:
    created = api.post("/v1/sandboxes", json={"envs": {"SM_SANDBOX": "yes"}}).json()
    base = f"/v1/sandboxes/{created['id']}"
    try:
        events = api.post(
            f"{base}/code/execute",
            json={"code": "import os; print(os.environ['SM_SANDBOX'])"},
        ).text
        assert '"text": "yes\\n"' in events
    finally:
        api.delete(base)
