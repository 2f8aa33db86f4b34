"""Loading and unloading the extension in an IPython shell."""

from __future__ import annotations

from typing import Any

from sandbox_magic.notebook.magics import SandboxMagics

__all__ = ["load", "loaded_magics", "unload"]

_ATTRIBUTE = "_sandbox_magics"


def loaded_magics(shell: Any) -> SandboxMagics | None:
    """The magics the extension registered in ``shell``; None when it is not loaded."""
    magics: SandboxMagics | None = getattr(shell, _ATTRIBUTE, None)
    return magics


def load(shell: Any) -> None:
    """Register the magics once per shell, configured from the shell's config."""
    if getattr(shell, _ATTRIBUTE, None) is not None:
        return
    magics = SandboxMagics(shell=shell, parent=shell)
    shell.register_magics(magics)
    if magics not in shell.configurables:
        shell.configurables.append(magics)
    setattr(shell, _ATTRIBUTE, magics)
    _prestart_after_this_cell(shell, magics)


def _prestart_after_this_cell(shell: Any, magics: SandboxMagics) -> None:
    """Once the current cell ends, let the magics start the embedded server early."""
    events = getattr(shell, "events", None)
    if events is None:
        return

    def after_cell(*_: Any) -> None:
        events.unregister("post_run_cell", after_cell)
        if getattr(shell, _ATTRIBUTE, None) is magics:
            magics.prestart()

    events.register("post_run_cell", after_cell)


def unload(shell: Any) -> None:
    """Remove the magics and close connections, background runs and the local server."""
    magics = loaded_magics(shell)
    if magics is None:
        return
    magics.close()
    registry = shell.magics_manager.magics
    for kind in ("line", "cell"):
        registry[kind].pop("sandbox", None)
    if magics in shell.configurables:
        shell.configurables.remove(magics)
    setattr(shell, _ATTRIBUTE, None)
