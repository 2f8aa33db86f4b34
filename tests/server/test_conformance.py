"""What the service SDK's integration suites expect of the local server, tested directly.

Displayed images as artifacts, chart data from matplotlib figures, the reserved
runtime area, per-sandbox packages and the languages of the code-interpreter template.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox_magic.server import languages

SVG = (
    "<svg xmlns='http://www.w3.org/2000/svg' width='40' height='20'>"
    "<rect width='40' height='20' fill='teal'/></svg>"
)


def _stream(sbx: Any, **body: Any) -> list[dict[str, Any]]:
    """The events of one ``code/execute`` call."""
    with sbx.api.stream("POST", f"{sbx.base}/code/execute", json=body, timeout=180) as response:
        assert response.status_code == 200, response.read()
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    return [json.loads(line[len("data: ") :]) for line in lines]


def _plot(kind: str) -> str:
    body = {
        "bar": "plt.bar(['A', 'B'], [10, 20], label='Revenue')",
        "line": "plt.plot([1, 2, 3], [4, 5, 6.5], label='trend')",
        "scatter": "plt.scatter([1, 2], [3, 4], label='points')",
        "pie": "plt.pie([1, 3], labels=['x', 'y'])",
    }[kind]
    return (
        "import matplotlib.pyplot as plt\n"
        f"{body}\nplt.title('T {kind}')\nplt.xlabel('X')\nplt.ylabel('Y')\nplt.show()"
    )


def test_a_displayed_plot_is_an_image_artifact_with_its_chart(sbx: Any) -> None:
    ctx = sbx.context()
    events = _stream(sbx, code="print('before')\n" + _plot("bar"), context_id=ctx)
    kinds = [event["type"] for event in events]
    assert kinds.index("stdout") < kinds.index("result") < kinds.index("artifact")
    [result] = [event for event in events if event["type"] == "result"]
    [announced] = [event["artifact"] for event in events if event["type"] == "artifact"]
    chart = result["chart"]
    assert chart["type"] == "bar"
    assert (chart["title"], chart["x_label"], chart["y_label"]) == ("T bar", "X", "Y")
    assert chart["elements"] == [
        {"label": "A", "value": 10, "group": "Revenue"},
        {"label": "B", "value": 20, "group": "Revenue"},
    ]
    assert "application/vnd.sandbox-magic.chart+json" not in result["data"]
    assert announced["kind"] == "image"
    assert announced["mime_type"] == "image/png"
    assert announced["context_id"] == ctx
    assert announced["metadata"] == {"source": "display", "result_index": 0}
    count = next(e["execution_count"] for e in events if e["type"] == "number_of_executions")
    assert announced["execution_count"] == count

    content = sbx.api.get(f"{sbx.base}/code/artifacts/{announced['id']}/download").content
    assert content == base64.b64decode(result["png"])
    assert hashlib.sha256(content).hexdigest() == announced["sha256"]
    assert announced["size_bytes"] == len(content)
    preview = sbx.api.get(f"{sbx.base}/code/artifacts/{announced['id']}/preview")
    assert preview.status_code == 200
    assert preview.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    ("kind", "first"),
    [
        ("line", {"x": 1, "y": 4, "group": "trend"}),
        ("scatter", {"x": 1, "y": 3, "label": "points", "group": "points"}),
        ("pie", {"label": "x", "value": 25, "group": "default"}),
    ],
)
def test_line_scatter_and_pie_charts(sbx: Any, kind: str, first: dict[str, Any]) -> None:
    run = sbx.run(_plot(kind), sbx.context())
    [result] = run["execution"]["results"]
    chart = result["chart"]
    assert chart["type"] == kind
    assert chart["title"] == f"T {kind}"
    assert chart["elements"][0] == first
    assert len(chart["elements"]) == (3 if kind == "line" else 2)


def test_image_artifacts_page_and_filter_like_files(sbx: Any) -> None:
    ctx, other = sbx.context(), sbx.context()
    counts, shown = [], {}
    for _ in range(3):
        run = sbx.run(f"from IPython.display import SVG, display\ndisplay(SVG({SVG!r}))", ctx)
        [artifact] = run["execution"]["artifacts"]
        assert artifact["mime_type"] == "image/svg+xml"
        shown[artifact["id"]] = run["execution"]["results"][0]["svg"]
        counts.append(run["execution"]["execution_count"])
    sbx.run("open('notes.txt', 'w').write('file')", other)

    def listed(**params: Any) -> dict[str, Any]:
        response = sbx.api.get(f"{sbx.base}/code/artifacts", params=params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page

    images = listed(kind="image")["items"]
    assert len(images) == 3
    assert {item["context_id"] for item in images} == {ctx}
    assert [item["name"] for item in listed(kind="file")["items"]] == ["notes.txt"]
    assert len(listed(context_id=ctx, execution_count=counts[1])["items"]) == 1
    first = listed(context_id=ctx, limit=2)
    assert len(first["items"]) == 2
    assert first["next_cursor"]
    rest = listed(context_id=ctx, limit=2, cursor=first["next_cursor"])
    assert len(rest["items"]) == 1
    seen = {item["id"] for item in first["items"] + rest["items"]}
    assert seen == {item["id"] for item in images}
    svg = sbx.api.get(f"{sbx.base}/code/artifacts/{images[0]['id']}/download")
    assert svg.text == shown[images[0]["id"]]
    assert "teal" in svg.text


def test_display_updates_add_no_artifact(sbx: Any) -> None:
    code = (
        "from IPython.display import SVG, display\n"
        f"h = display(SVG({SVG!r}), display_id=True)\n"
        f"h.update(SVG({SVG.replace('teal', 'red')!r}))"
    )
    run = sbx.run(code, sbx.context())
    assert len(run["execution"]["artifacts"]) == 1


@pytest.mark.parametrize(
    "cwd", ["/workspace/.nullspace", "/workspace/.nullspace/runtime", ".nullspace"]
)
def test_the_runtime_area_is_a_reserved_cwd(sbx: Any, cwd: str) -> None:
    response = sbx.api.post(f"{sbx.base}/code/contexts", json={"cwd": cwd})
    assert response.status_code == 400
    assert "cwd is reserved" in response.json()["error"]["message"]


def _wheel(directory: Path, name: str) -> Path:
    """A minimal pure-Python wheel, built by hand (pip installs it with no network)."""
    path = directory / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    files = {
        f"{name}/__init__.py": "VALUE = 'from the sandbox'\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = "".join(f"{p},,\n" for p in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in {**files, f"{info}/RECORD": record}.items():
            archive.writestr(member, text)
    return path


def _wheel_in_sandbox(sbx: Any, directory: Path, name: str) -> str:
    """Put the wheel in the sandbox's workspace (a confined kernel sees nothing of the
    host's /tmp) and return its path relative to the workspace, the kernel's cwd."""
    wheel = _wheel(directory, name)
    response = sbx.api.put(
        f"{sbx.base}/file", params={"path": f"/workspace/{wheel.name}"}, content=wheel.read_bytes()
    )
    assert response.status_code == 204, response.text
    return f"./{wheel.name}"


def test_pip_install_goes_to_the_sandbox_not_the_server(sbx: Any, tmp_path: Path) -> None:
    name = "sbm_probe_pkg"
    wheel = _wheel_in_sandbox(sbx, tmp_path, name)
    ctx = sbx.context()
    install = sbx.run(f"!pip install --no-index --no-deps {wheel}", ctx, timeout=120)
    assert install["status"] == "succeeded", install
    assert "Successfully installed" in "".join(install["execution"]["logs"]["stdout"])
    used = sbx.run(f"import {name}\nprint({name}.VALUE, {name}.__file__)", ctx)
    assert used["status"] == "succeeded", used
    printed = "".join(used["execution"]["logs"]["stdout"])
    assert "from the sandbox" in printed
    assert "/.nullspace/python/" in printed
    fresh = sbx.run(f"import {name}; print('fresh context too')", sbx.context())
    assert fresh["status"] == "succeeded", fresh
    assert not list(Path(sys.prefix).glob(f"lib/python*/site-packages/{name}"))


def test_pip_install_is_per_sandbox(
    api: httpx.Client, sbx: Any, tmp_path: Path, wait_until: Any
) -> None:
    name = "sbm_private_pkg"
    wheel = _wheel_in_sandbox(sbx, tmp_path, name)
    installed = sbx.run(f"!pip install --no-index --no-deps {wheel}", sbx.context(), timeout=120)
    assert "Successfully installed" in "".join(installed["execution"]["logs"]["stdout"])
    other = api.post("/v1/sandboxes", json={}).json()["id"]
    try:
        ctx = api.post(f"/v1/sandboxes/{other}/code/contexts", json={}).json()["id"]
        run = api.post(
            f"/v1/sandboxes/{other}/code/runs", json={"code": f"import {name}", "context_id": ctx}
        ).json()
        final = wait_until(
            lambda: (
                (r := api.get(f"/v1/sandboxes/{other}/code/runs/{run['id']}").json())["status"]
                in ("succeeded", "failed")
                and r
            ),
            what="the run in the other sandbox",
        )
        assert final["execution"]["error"]["name"] == "ModuleNotFoundError"
    finally:
        api.delete(f"/v1/sandboxes/{other}")


def test_timeout_is_reported_as_timeout_error(sbx: Any) -> None:
    events = _stream(sbx, code="import time; time.sleep(30)", context_id=sbx.context(), timeout=1)
    errors = [event for event in events if event["type"] == "error"]
    assert errors[-1]["name"] == "TimeoutError"


SNIPPETS = [
    ("bash", "echo nullspace-bash", "nullspace-bash"),
    ("javascript", "console.log('nullspace-javascript')", "nullspace-javascript"),
    ("typescript", "const l: string = 'nullspace-ts'; console.log(l)", "nullspace-ts"),
    ("r", "cat('nullspace-r\\n')", "nullspace-r"),
    ("java", 'System.out.println("nullspace-java");', "nullspace-java"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("language", "code", "expected"), SNIPPETS)
def test_each_template_language_runs(sbx: Any, language: str, code: str, expected: str) -> None:
    # Confined or not, as the suite's server runs (CI runs this file both ways).
    if language not in languages.available():
        pytest.fail(f"{language} is not installed: scripts/setup.sh test installs every language")
    response = sbx.api.post(f"{sbx.base}/code/contexts", json={"language": language})
    assert response.status_code == 201, response.text
    assert response.json()["language"] == language
    ctx = response.json()["id"]
    run = sbx.run(code, ctx, timeout=120)
    assert run["status"] == "succeeded", run
    assert expected in "".join(run["execution"]["logs"]["stdout"])


@pytest.mark.slow
def test_java_keeps_state_and_reports_exceptions(sbx: Any) -> None:
    ctx = sbx.api.post(f"{sbx.base}/code/contexts", json={"language": "java"}).json()["id"]
    first = sbx.run("int base = 41;", ctx, timeout=120)
    assert first["status"] == "succeeded", first["execution"].get("error")
    run = sbx.run("System.out.println(base + 1);", ctx)
    assert "".join(run["execution"]["logs"]["stdout"]).strip() == "42", (first, run)
    failed = sbx.run('throw new IllegalStateException("java boom");', ctx)
    assert failed["status"] == "failed"
    assert failed["execution"]["error"]["name"] == "IllegalStateException"
    assert failed["execution"]["error"]["value"] == "java boom"


def test_a_missing_language_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox_magic.server import kernelspecs
    from sandbox_magic.server.errors import ApiError
    from sandbox_magic.server.kernelspecs import SandboxKernelSpecManager, resolve_language

    monkeypatch.setattr(languages, "_argv", lambda kernel: None)
    monkeypatch.setattr(kernelspecs, "_installed", lambda manager: {})
    with pytest.raises(ApiError) as refused:
        resolve_language("r", SandboxKernelSpecManager())
    message = refused.value.message
    assert "'r' is not available" in message
    assert "r-cran-irkernel" in message
    assert "offers python" in message


def test_healthz_lists_the_languages_offered_and_missing(api: httpx.Client) -> None:
    offered = api.get("/healthz").json()["languages"]
    assert offered["offered"][0] == "python"
    assert set(offered["offered"]) | set(offered["missing"]) == {
        "python",
        "bash",
        "javascript",
        "typescript",
        "r",
        "java",
    }
    assert all(offered["missing"].values())


def test_displayed_images_are_not_listed_again_as_files() -> None:
    from sandbox_magic.client import Artifact
    from sandbox_magic.render.artifacts import files_only

    plot = Artifact(id="art_1", name="output-1-1.png", metadata={"source": "display"})
    saved = Artifact(id="art_2", name="plot.png", metadata={"path": "plot.png"})
    assert files_only([plot, saved]) == [saved]
