"""``sandbox-magic demo`` without the [demo] extra says what to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sandbox_magic import cli


def test_demo_without_its_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.delitem(sys.modules, "sandbox_magic.demo", raising=False)
    monkeypatch.delitem(sys.modules, "sandbox_magic.demo.runner", raising=False)
    monkeypatch.setitem(sys.modules, "nbclient", None)  # as if it were not installed
    notebook = tmp_path / "any.ipynb"
    assert cli.main(["demo", "--notebook", str(notebook)]) == 2
    err = capsys.readouterr().err
    assert "pip install 'sandbox-magic[demo]'" in err
    assert "Traceback" not in err
