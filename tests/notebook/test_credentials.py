"""Credentials are read where the service's own tools keep them, and status says where."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox_magic.session.credentials import (
    config_paths,
    find_api_key,
    find_api_url,
    read_dotenv,
    source_of,
)

KEY = "ns_live_SECRETKEY_123456"


def _home(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


def test_environment_variables_come_first_in_the_sdk_order(tmp_path: Path) -> None:
    env = {**_home(tmp_path), "NULLSPACE_BASE_URL": "https://b.test", "NULLSPACE_TOKEN": KEY}
    (tmp_path / ".env").write_text("NULLSPACE_API_URL=https://dotenv.test\n")
    url, key = find_api_url(env, tmp_path), find_api_key(env, tmp_path)
    assert url is not None
    assert url.value == "https://b.test"
    assert url.source == "environment variable NULLSPACE_BASE_URL"
    assert key is not None
    assert key.source == "environment variable NULLSPACE_TOKEN"
    env["NULLSPACE_API_URL"] = "https://a.test"
    assert find_api_url(env, tmp_path) == find_api_url({**env}, tmp_path)
    assert find_api_url(env, tmp_path).value == "https://a.test"  # type: ignore[union-attr]


def test_dotenv_in_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nexport NULLSPACE_API_URL='https://dotenv.test'\n"
        f'NULLSPACE_TOKEN="{KEY}"\nOTHER=1 # trailing\nnot a line\n'
    )
    env = _home(tmp_path)
    url, key = find_api_url(env, tmp_path), find_api_key(env, tmp_path)
    assert url is not None
    assert url.value == "https://dotenv.test"
    assert url.source == f"NULLSPACE_API_URL in {tmp_path / '.env'}"
    assert key is not None
    assert key.value == KEY
    assert read_dotenv(tmp_path / ".env")["OTHER"] == "1"
    assert read_dotenv(tmp_path / "missing") == {}


def test_config_files_xdg_before_legacy(tmp_path: Path) -> None:
    env = {**_home(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    xdg, legacy = config_paths(env)
    legacy.parent.mkdir(parents=True)
    legacy.write_text(json.dumps({"base_url": "https://legacy.test", "api_key": KEY}))
    url = find_api_url(env, tmp_path)
    assert url is not None
    assert url.source == "base_url in ~/.nullspace/config.json"
    xdg.parent.mkdir(parents=True)
    xdg.write_text(json.dumps({"api_url": "https://xdg.test"}))
    url = find_api_url(env, tmp_path)
    assert url is not None
    assert url.value == "https://legacy.test"
    xdg.write_text(json.dumps({"base_url": "https://xdg.test"}))
    assert find_api_url(env, tmp_path).value == "https://xdg.test"  # type: ignore[union-attr]
    key = find_api_key(env, tmp_path)
    assert key is not None
    assert key.source == "api_key in ~/.nullspace/config.json"


def test_broken_files_are_skipped_not_fatal(tmp_path: Path) -> None:
    env = _home(tmp_path)
    xdg, _ = config_paths(env)
    xdg.parent.mkdir(parents=True)
    xdg.write_text("{not json")
    (tmp_path / ".env").write_bytes(b"\xff\xfe\x00garbage")
    assert find_api_url(env, tmp_path) is None
    assert find_api_key(env, tmp_path) is None


def test_found_values_and_sources_never_show_the_key(tmp_path: Path) -> None:
    found = find_api_key({**_home(tmp_path), "NULLSPACE_API_KEY": KEY}, tmp_path)
    assert found is not None
    assert KEY not in repr(found)
    assert KEY not in source_of(KEY, found, setting="SandboxMagics.api_key")
    assert source_of("other", found, setting="SandboxMagics.api_key").startswith("set in this")
    assert source_of(None, found, setting="SandboxMagics.api_key") == "not set"


def test_status_says_where_url_and_key_came_from(
    ip, live_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """A user set up for the SDK (here: a .env file) is connected with nothing more."""
    for name in ("NULLSPACE_API_URL", "NULLSPACE_API_KEY", "NULLSPACE_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("NULLSPACE_TOKEN", live_server.token)
    (tmp_path / ".env").write_text(f"NULLSPACE_BASE_URL={live_server.url}\n")
    monkeypatch.chdir(tmp_path)
    ip.run_line_magic("load_ext", "sandbox_magic")
    ip._sandbox_magics.keep_sandbox = False  # type: ignore[attr-defined]
    try:
        before = {row[0]: row[1] for row in ip.run_line_magic("sandbox", "status").rows}
        assert before["api"] == "not connected yet"
        ip.run_cell_magic("sandbox", "", "1")
        table = ip.run_line_magic("sandbox", "status")
        text = repr(table) + str(getattr(table, "rows", ""))
        rows = {row[0]: row[1] for row in table.rows}
        assert rows["url from"] == f"NULLSPACE_BASE_URL in {tmp_path / '.env'}"
        assert rows["key from"] == "environment variable NULLSPACE_TOKEN"
        assert rows["api"] == "1.x (/v1/machines); async runs"
        assert rows["health"] == "ok"
        assert live_server.token not in text
        assert live_server.token not in capsys.readouterr().out
    finally:
        ip.run_line_magic("unload_ext", "sandbox_magic")


def test_the_process_own_lookup_sees_every_change_between_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asked on every cell, the lookup is remembered; any change of its inputs shows."""
    for name in ("NULLSPACE_API_URL", "NULLSPACE_BASE_URL", "NULLSPACE_API_KEY", "NULLSPACE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", _home(tmp_path)["HOME"])
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_api_key() is None
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"NULLSPACE_API_KEY={KEY}\n")
    found = find_api_key()
    assert found is not None
    assert found.value == KEY
    dotenv.write_text(f"NULLSPACE_API_KEY={KEY}-rotated\n")
    assert find_api_key().value == f"{KEY}-rotated"  # type: ignore[union-attr]
    monkeypatch.setenv("NULLSPACE_TOKEN", "from-env")
    assert find_api_key().source == "environment variable NULLSPACE_TOKEN"  # type: ignore[union-attr]
    monkeypatch.delenv("NULLSPACE_TOKEN")
    config = config_paths()[0]
    config.parent.mkdir(parents=True)
    config.write_text(json.dumps({"base_url": "https://config.test"}))
    assert find_api_url().value == "https://config.test"  # type: ignore[union-attr]
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # no .env here
    assert find_api_key() is None
