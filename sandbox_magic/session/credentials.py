"""Where the server URL and API key come from: the places the service's own tools look.

A user already set up for the service's SDK or CLI is connected with nothing more. In
order, the first place that has a value wins (the same order as the 1.x SDK):

URL: ``$NULLSPACE_API_URL``, ``$NULLSPACE_BASE_URL``, then ``NULLSPACE_API_URL`` /
``NULLSPACE_BASE_URL`` in a ``.env`` file in the working folder, then ``base_url`` (or
``api_url``) in ``$XDG_CONFIG_HOME/nullspace/config.json`` (``~/.config/...``), then in
``~/.nullspace/config.json``.

Key: ``$NULLSPACE_API_KEY``, ``$NULLSPACE_TOKEN``, then the same names in ``.env``, then
``api_key`` in the two config files.

`Found` records the place as words ("environment variable NULLSPACE_TOKEN",
"~/.config/nullspace/config.json"), so ``%sandbox status`` can say where the URL and
the key came from. Its repr never shows the value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Final

__all__ = ["Found", "config_paths", "find_api_key", "find_api_url", "read_dotenv", "source_of"]

URL_NAMES: Final = ("NULLSPACE_API_URL", "NULLSPACE_BASE_URL")
KEY_NAMES: Final = ("NULLSPACE_API_KEY", "NULLSPACE_TOKEN")
_URL_FIELDS: Final = ("base_url", "api_url")
_KEY_FIELDS: Final = ("api_key",)
_MAX_FILE_BYTES: Final = 1024 * 1024


@dataclass(frozen=True)
class Found:
    """A value and the place it was read from; the value stays out of the repr."""

    value: str = field(repr=False)
    source: str


def config_paths(env: Mapping[str, str] | None = None) -> tuple[Path, Path]:
    """The SDK's config files: the XDG one, then the older ``~/.nullspace`` one."""
    xdg, legacy = _config_files(os.environ if env is None else env)
    return Path(xdg), Path(legacy)


def _config_files(env: Mapping[str, str]) -> tuple[str, str]:
    """`config_paths` as plain strings (asked before every cell: cheaper than pathlib)."""
    home = env.get("HOME") or str(Path.home())
    xdg = env.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return (
        os.path.join(xdg, "nullspace", "config.json"),
        os.path.join(home, ".nullspace", "config.json"),
    )


def read_dotenv(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a ``.env`` file (``export``, quotes and comments allowed).

    An unreadable or oversized file reads as empty: credentials are then looked for
    further on, never guessed.
    """
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE_BYTES:
            return {}
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, value = (part.strip() for part in line.split("=", 1))
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        if key:
            values[key] = value
    return values


def _read_config(path: Path) -> dict[str, object]:
    try:
        if not path.is_file() or path.stat().st_size > _MAX_FILE_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _shown(path: Path, env: Mapping[str, str]) -> str:
    home = env.get("HOME") or str(Path.home())
    text = str(path)
    return "~" + text[len(home) :] if home and text.startswith(home.rstrip("/") + "/") else text


class _Files:
    """Reads each file once, and only when a lookup gets that far."""

    def __init__(self, dotenv: Path) -> None:
        self.dotenv_path = dotenv
        self._dotenv: dict[str, str] | None = None
        self._configs: dict[Path, dict[str, object]] = {}

    def dotenv(self, name: str) -> str | None:
        if self._dotenv is None:
            self._dotenv = read_dotenv(self.dotenv_path)
        return self._dotenv.get(name)

    def config(self, path: Path, key: str) -> str | None:
        if path not in self._configs:
            self._configs[path] = _read_config(path)
        value = self._configs[path].get(key)
        return value if isinstance(value, str) else None


def _candidates(
    names: tuple[str, ...],
    fields: tuple[str, ...],
    env: Mapping[str, str],
    cwd: Path,
) -> Iterator[tuple[str, Callable[[], str | None]]]:
    """``(source, read)`` pairs in precedence order."""
    files = _Files(cwd / ".env")
    for name in names:
        yield f"environment variable {name}", partial(env.get, name)
    for name in names:
        yield f"{name} in {files.dotenv_path}", partial(files.dotenv, name)
    for key in fields:  # as the SDK: every file's base_url before any file's api_url
        for path in config_paths(env):
            yield f"{key} in {_shown(path, env)}", partial(files.config, path, key)


def _first(
    names: tuple[str, ...],
    fields: tuple[str, ...],
    env: Mapping[str, str] | None,
    cwd: Path | None,
) -> Found | None:
    if env is None and cwd is None:  # this process's own: asked on every cell
        return _first_cached(names, fields)
    return _look(names, fields, os.environ if env is None else env, cwd or Path.cwd())


def _look(
    names: tuple[str, ...], fields: tuple[str, ...], env: Mapping[str, str], cwd: Path
) -> Found | None:
    for source, read in _candidates(names, fields, env, cwd):
        value = (read() or "").strip()
        if value:
            return Found(value, source)
    return None


#: ``(names, fields)`` -> (what the answer depended on, the answer).
_cache: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[object, Found | None]] = {}


def _first_cached(names: tuple[str, ...], fields: tuple[str, ...]) -> Found | None:
    """`_look` in this process's environment, read again only when an input changed:
    a variable, the working folder, or a file's size or time (a few ``stat`` calls
    instead of reading and parsing the files on every cell)."""
    env, cwd = os.environ, os.getcwd()
    files = (os.path.join(cwd, ".env"), *_config_files(env))
    stamps: list[tuple[int, int] | None] = []
    for path in files:
        try:
            stat = os.stat(path)
            stamps.append((stat.st_mtime_ns, stat.st_size))
        except OSError:
            stamps.append(None)
    inputs = (tuple(env.get(name) for name in names), files, tuple(stamps))
    cached = _cache.get((names, fields))
    if cached is not None and cached[0] == inputs:
        return cached[1]
    found = _look(names, fields, env, Path(cwd))
    _cache[(names, fields)] = (inputs, found)
    return found


def find_api_url(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Found | None:
    """The service URL from the first place that has one, or None."""
    return _first(URL_NAMES, _URL_FIELDS, env, cwd)


def find_api_key(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> Found | None:
    """The API key from the first place that has one, or None."""
    return _first(KEY_NAMES, _KEY_FIELDS, env, cwd)


def source_of(value: str | None, found: Found | None, *, setting: str) -> str:
    """Words for where a setting in use came from (never the value itself)."""
    if not value:
        return "not set"
    if found is not None and found.value == value.strip():
        return found.source
    return f"set in this session ({setting}: %config or %sandbox connect)"
