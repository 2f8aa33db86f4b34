"""``%sandbox on`` / ``%sandbox off``: every following cell runs in the sandbox.

Like ipyparallel's ``%autopx``: while the mode is on, an IPython input transformer
puts a ``%%sandbox`` line (with the options given to ``on``) in front of each cell
before IPython reads it, so the cell runs, shows its status and fails exactly like a
``%%sandbox`` cell. A cell that starts with a magic (``%``), a shell escape (``!``)
or help (``?``) runs as written, which is how ``%sandbox off`` stays local.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AutoSandbox"]

_LOCAL_PREFIXES = ("%", "!", "?")


class AutoSandbox:
    """The transformer that sends every cell to the sandbox, and its on/off switch."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.options = ""

    @property
    def active(self) -> bool:
        transformers = self._transformers()
        return transformers is not None and self in transformers

    def _transformers(self) -> list[Any] | None:
        found: list[Any] | None = getattr(self.shell, "input_transformers_cleanup", None)
        return found

    def on(self, options: str = "") -> None:
        """Turn the mode on (again, with new ``options`` for the ``%%sandbox`` line)."""
        self.options = options.strip()
        transformers = self._transformers()
        if transformers is None:
            raise RuntimeError("this shell has no input transformers")
        if self not in transformers:
            transformers.append(self)

    def off(self) -> bool:
        """Turn the mode off; False when it was not on."""
        transformers = self._transformers()
        if transformers is None or self not in transformers:
            return False
        transformers.remove(self)
        return True

    def __call__(self, lines: list[str]) -> list[str]:
        first = next((line for line in lines if line.strip()), None)
        if first is None or first.lstrip().startswith(_LOCAL_PREFIXES):
            return lines
        header = f"%%sandbox {self.options}".rstrip() + "\n"
        return [header, *lines]
