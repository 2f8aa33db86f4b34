"""The client words its errors for any caller: no notebook commands in its messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_magic.client import (
    AuthenticationError,
    SandboxConnectionError,
    SandboxError,
    api_error_for_status,
)

CLIENT = Path(__file__).resolve().parents[2] / "sandbox_magic" / "client"
NOTEBOOK_WORDS = ("%sandbox", "%config", "%%sandbox", "SandboxMagics")


@pytest.mark.parametrize("path", sorted(CLIENT.glob("*.py")), ids=lambda p: p.name)
def test_no_client_module_names_a_notebook_command(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert [w for w in NOTEBOOK_WORDS if w in text] == []


def test_errors_read_without_a_notebook_and_take_a_hint() -> None:
    errors: list[SandboxError] = [
        SandboxConnectionError("http://x", "refused"),
        api_error_for_status(401, "bad key"),
    ]
    assert isinstance(errors[1], AuthenticationError)
    for error in errors:
        assert not any(w in str(error) for w in NOTEBOOK_WORDS)
        error.hint = "Try this."
        assert str(error).endswith(" Try this.")
