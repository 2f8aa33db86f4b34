"""The languages of the hosted code-interpreter template, each with the kernel that runs it.

| language | kernel | where it comes from |
|---|---|---|
| python | the server's own Python (ipykernel) | always there |
| bash | ``bash_kernel`` | PyPI (``bash_kernel``) |
| javascript, typescript | Deno's Jupyter kernel | PyPI (``deno`` ships the binary) |
| r | IRkernel | Debian (``r-cran-irkernel``) |
| java | `jshell_kernel`, a wrapper over the JDK's ``jshell`` | a JDK |

Each is optional: `available` tells which are installed right now, and a request
for a missing one is refused with what to install. A language's kernelspec is built
here (named ``sandbox-magic-<kernel>``), never read from disk.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

from jupyter_client.kernelspec import KernelSpec

from sandbox_magic.server import jshell_kernel
from sandbox_magic.server.jshell_kernel import find_jshell

__all__ = [
    "BUILTIN_PREFIX",
    "LANGUAGES",
    "UNCONFINABLE",
    "Language",
    "available",
    "builtin_spec",
    "helper_depth",
    "kernel_transport",
    "lookup",
    "memory_settings",
    "report",
    "sends_output_after_idle",
    "source_program",
    "tcp_only",
    "unavailable_reason",
]

BUILTIN_PREFIX: Final = "sandbox-magic-"


@dataclass(frozen=True, slots=True)
class Language:
    """One language: its kernel, and what to install when that kernel is missing."""

    name: str
    kernel: str
    install_hint: str


LANGUAGES: Final = (
    Language("bash", "bash", "pip install bash_kernel"),
    Language("javascript", "deno", "pip install deno"),
    Language("typescript", "deno", "pip install deno"),
    Language("r", "r", "apt-get install r-cran-irkernel"),
    Language("java", "java", "a JDK with jshell (apt-get install default-jdk-headless)"),
)

#: Kernels that cannot run under bubblewrap isolation, and why (shown to the user).
#: None at present: Deno's kernel, TCP-only, runs behind `tcp_relay` when confined.
UNCONFINABLE: Final[dict[str, str]] = {}

#: Kernels that listen on loopback TCP only.
_TCP_ONLY: Final = frozenset({f"{BUILTIN_PREFIX}deno"})
#: Kernels on V8, which reserves about 1 GB of address space up front (its code range
#: and heap cages): their data limit gets that much on top, and their heap is capped at
#: the sandbox's memory instead.
_V8: Final = frozenset({f"{BUILTIN_PREFIX}deno"})
_V8_RESERVE_MB: Final = 1024

_ALIASES: Final = {"sh": "bash", "js": "javascript", "node": "javascript", "ts": "typescript"}


def lookup(requested: str) -> Language | None:
    """The built-in language for a requested name (case-insensitive, with aliases)."""
    wanted = requested.strip().lower()
    wanted = _ALIASES.get(wanted, wanted)
    return next((language for language in LANGUAGES if language.name == wanted), None)


def _deno() -> str | None:
    if importlib.util.find_spec("deno") is not None:
        try:
            from deno import find_deno_bin

            found = str(find_deno_bin())
            if Path(found).is_file():
                return found
        except Exception:
            pass
    return shutil.which("deno")


#: Where R packages live on Debian and in R's own default layout.
_R_LIBRARIES: Final = (
    "/usr/local/lib/R/site-library",
    "/usr/lib/R/site-library",
    "/usr/lib/R/library",
    "/usr/local/lib/R/library",
)


def _r_with_irkernel() -> str | None:
    """``R`` when IRkernel is installed in one of its libraries (no R process is started)."""
    r = shutil.which("R")
    if r is None:
        return None
    libraries = [*_R_LIBRARIES]
    for name in ("R_LIBS", "R_LIBS_SITE", "R_LIBS_USER"):
        libraries += [part for part in os.environ.get(name, "").split(os.pathsep) if part]
    found = any((Path(library) / "IRkernel" / "DESCRIPTION").is_file() for library in libraries)
    return r if found else None


def _argv(kernel: str) -> list[str] | None:
    """The command line of a kernel, or None when it is not installed."""
    if kernel == "bash":
        found = importlib.util.find_spec("bash_kernel") is not None and shutil.which("bash")
        return [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"] if found else None
    if kernel == "deno":
        deno = _deno()
        return [deno, "jupyter", "--kernel", "--conn", "{connection_file}"] if deno else None
    if kernel == "r":
        r = _r_with_irkernel()
        return (
            [r, "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"] if r else None
        )
    if kernel == "java":
        if find_jshell() is None:
            return None
        return [
            sys.executable,
            "-c",
            source_program(jshell_kernel.__file__),
            "-f",
            "{connection_file}",
        ]
    return None


@lru_cache(maxsize=4)
def source_program(path: str) -> str:
    """The module at ``path`` as a ``python -c`` program run as ``__main__``.

    A confined kernel cannot import this package, and base64 keeps the source clear of
    the ``{...}`` fields jupyter_client fills in on a kernel's command line.
    """
    encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    name = Path(path).name
    return (
        "import base64; __name__ = '__main__'; "
        f"exec(compile(base64.b64decode('{encoded}'), '{name}', 'exec'))"
    )


def builtin_spec(spec_name: str) -> KernelSpec | None:
    """The kernelspec ``sandbox-magic-<kernel>``, if that kernel is installed."""
    if not spec_name.startswith(BUILTIN_PREFIX):
        return None
    kernel = spec_name[len(BUILTIN_PREFIX) :]
    argv = _argv(kernel)
    if argv is None:
        return None
    language = next(item.name for item in LANGUAGES if item.kernel == kernel)
    return KernelSpec(
        argv=argv,
        display_name=f"{language} (sandbox-magic server)",
        language=language,
        # Deno and IRkernel take interrupts as messages; the Python-based ones as SIGINT.
        interrupt_mode="message" if kernel in ("deno", "r") else "signal",
        env={"PYDEVD_DISABLE_FILE_VALIDATION": "1"},
        metadata={"debugger": False},
    )


def available(*, confined: bool = False) -> list[str]:
    """The built-in languages whose kernel is installed now (and, when ``confined``,
    can run under bubblewrap)."""
    return [
        item.name
        for item in LANGUAGES
        if _argv(item.kernel) is not None and not (confined and item.kernel in UNCONFINABLE)
    ]


def unavailable_reason(language: Language, *, confined: bool) -> str:
    """Why ``language`` is not offered: not installed, or not runnable confined."""
    if confined and language.kernel in UNCONFINABLE and _argv(language.kernel) is not None:
        return UNCONFINABLE[language.kernel]
    return f"its kernel is not installed ({language.install_hint})"


def kernel_transport(
    spec_name: str, socket_base: Path, *, confined: bool = False
) -> tuple[str, str]:
    """``(transport, ip)`` for a kernel: Unix sockets at ``socket_base``, or loopback TCP.

    Deno's kernel speaks TCP only: unconfined it gets loopback TCP; confined, the
    server talks to it over Unix sockets all the same, through `tcp_relay`.
    """
    if spec_name in _TCP_ONLY and not confined:
        return "tcp", "127.0.0.1"
    return "ipc", str(socket_base)


def memory_settings(spec_name: str, memory_mb: int) -> tuple[int, dict[str, str]]:
    """MB of address space a kernel reserves beyond what it uses, and the environment
    that holds its own heap to ``memory_mb`` (both nothing for most kernels)."""
    if spec_name in _V8:
        return _V8_RESERVE_MB, {"DENO_V8_FLAGS": f"--max-old-space-size={memory_mb}"}
    return 0, {}


def tcp_only(spec_name: str) -> bool:
    """Whether the kernel listens on loopback TCP only (so runs behind `tcp_relay`)."""
    return spec_name in _TCP_ONLY


def helper_depth(spec_name: str) -> int | None:
    """How many levels of a kernel's child processes are its own, not its code's (None:
    all): bash_kernel runs bash as its child, whose children are the code's; the Java
    kernel runs jshell, which runs snippets in a JVM of its own below it; a confined
    Deno kernel runs below its `tcp_relay` (only confined kernels have strays killed)."""
    if spec_name in (f"{BUILTIN_PREFIX}bash", f"{BUILTIN_PREFIX}deno"):
        return 1
    if spec_name == f"{BUILTIN_PREFIX}java":
        return None
    return 0


def sends_output_after_idle(spec_name: str) -> bool:
    """Whether a kernel may publish a cell's output after its ``idle`` status.

    Deno's kernel forwards ``console.log`` output asynchronously: the last lines of a
    cell can arrive after the cell went idle.
    """
    return spec_name == f"{BUILTIN_PREFIX}deno"


def report(*, confined: bool = False) -> dict[str, object]:
    """What ``GET /healthz`` says: the languages offered, and why the rest are not."""
    offered = available(confined=confined)
    missing = {
        item.name: (
            UNCONFINABLE[item.kernel]
            if confined and item.kernel in UNCONFINABLE and _argv(item.kernel) is not None
            else item.install_hint
        )
        for item in LANGUAGES
        if item.name not in offered
    }
    return {"offered": ["python", *offered], "missing": missing}
