"""Which kernel runs a context's code: language names mapped to kernelspecs.

``python`` and ``python3`` always mean the server's own Python (``sys.executable``
with ipykernel), whatever kernelspecs are installed. The other languages of the
hosted template (bash, javascript, typescript, r, java) use the kernels `languages`
knows, when installed. Any other language is looked up among the installed
kernelspecs by name, then by the language they declare.

Every kernel is started through a tiny launcher that, on Linux, asks to be killed
when the server dies (``PR_SET_PDEATHSIG``); ipykernel's own parent poller
(``JPY_PARENT_PID``, set by jupyter_client) covers other systems within a second.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Final

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager, NoSuchKernel

from sandbox_magic.server import languages
from sandbox_magic.server.errors import ApiError

__all__ = ["PYTHON_SPEC_NAME", "KernelChoice", "SandboxKernelSpecManager", "resolve_language"]

#: Name of the server's own Python kernelspec (never installed on disk).
PYTHON_SPEC_NAME: Final = "sandbox-magic-python3"

_PYTHON_ALIASES: Final = frozenset({"python", "python3", "py", "ipython"})

#: Runs in the kernel process before ipykernel: die with the server (Linux), then
#: hand over to ``ipykernel_launcher`` exactly as ``python -m`` would.
_LAUNCHER: Final = (
    "import sys, runpy\n"
    "if sys.platform.startswith('linux'):\n"
    "    try:\n"
    "        import ctypes, signal\n"
    "        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)\n"
    "    except Exception:\n"
    "        pass\n"
    "sys.argv[0] = 'ipykernel_launcher'\n"
    "runpy.run_module('ipykernel_launcher', run_name='__main__', alter_sys=True)\n"
)


#: A sandbox's input history lives in memory: nobody reads its history file once the
#: kernel is gone, and writing that SQLite file cost about 2 ms of CPU per cell.
_IN_MEMORY_HISTORY: Final = "--HistoryManager.hist_file=:memory:"


def _python_spec() -> KernelSpec:
    return KernelSpec(
        argv=[sys.executable, "-c", _LAUNCHER, "-f", "{connection_file}", _IN_MEMORY_HISTORY],
        display_name="Python 3 (sandbox-magic server)",
        language="python",
        interrupt_mode="signal",
        env={
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        },
        metadata={"debugger": False},
    )


class SandboxKernelSpecManager(KernelSpecManager):
    """The installed kernelspecs, plus the server's own Python under a fixed name."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name == PYTHON_SPEC_NAME:
            return _python_spec()
        builtin = languages.builtin_spec(kernel_name)
        if builtin is not None:
            return builtin
        return super().get_kernel_spec(kernel_name)


@dataclass(frozen=True, slots=True)
class KernelChoice:
    """A resolved language: the kernelspec to start and the language to report."""

    spec_name: str
    language: str

    @property
    def is_own_python(self) -> bool:
        return self.spec_name == PYTHON_SPEC_NAME


def _installed(manager: KernelSpecManager) -> dict[str, dict[str, Any]]:
    try:
        specs: dict[str, dict[str, Any]] = manager.get_all_specs()
    except Exception:
        return {}
    return specs


def resolve_language(
    language: str | None, manager: KernelSpecManager, *, confined: bool = False
) -> KernelChoice:
    """Map a requested language to a kernel, or refuse with a 400 listing the choices
    (``confined``: kernels run under bubblewrap, where some cannot)."""
    wanted = (language or "python").strip().lower()
    if wanted in _PYTHON_ALIASES:
        return KernelChoice(PYTHON_SPEC_NAME, "python")
    builtin = languages.lookup(wanted)
    offered_builtins = languages.available(confined=confined)
    if builtin is not None and builtin.name in offered_builtins:
        return KernelChoice(f"{languages.BUILTIN_PREFIX}{builtin.kernel}", builtin.name)
    specs = _installed(manager)
    for name, info in specs.items():
        declared = str(info.get("spec", {}).get("language", "")).lower()
        if name.lower() == wanted or (declared == wanted and declared != "python"):
            try:
                manager.get_kernel_spec(name)
            except NoSuchKernel:
                continue
            return KernelChoice(name, declared or name)
    others = sorted(
        name
        for name, info in specs.items()
        if str(info.get("spec", {}).get("language", "")).lower() != "python"
    )
    offered = ["python", *offered_builtins, *(n for n in others if n not in offered_builtins)]
    if builtin is not None:
        raise ApiError.bad_request(
            f"Language {builtin.name!r} is not available on this server: "
            f"{languages.unavailable_reason(builtin, confined=confined)}. "
            f"This server offers {', '.join(offered)}."
        )
    raise ApiError.bad_request(
        f"Unknown language {language!r}: this server offers {', '.join(offered)}."
    )
