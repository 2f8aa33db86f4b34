"""Runs inside each Python kernel of the local server, once, before any user code.

It makes the kernel behave like one nobody watches through a widget frontend, which
is what a sandbox kernel is, so that outputs survive the trip to the notebook:

- **Progress bars**: ``tqdm.notebook`` and ``tqdm.auto`` would draw ipywidgets, whose
  state lives in this kernel and can never be shown in the notebook. They give
  tqdm's text bar instead (``\\r`` frames on stderr, which the notebook renders in
  place).
- **Altair** charts use Altair's ``mimetype`` renderer: a vega-lite MIME bundle that
  JupyterLab draws natively, without running any script.
- **Values**: the value of a cell's last expression also travels as JSON under
  `VALUE_MIME` when it is plain data (numbers, strings, booleans, None, and lists
  or dicts of them), so the notebook's ``_`` and ``Out[n]`` can hold the value itself.
- **Input**: ``input()`` and ``getpass()`` raise at once with a message that says
  what to do instead (nobody can type into a sandbox run).
- **Exit**: ``os._exit`` lets the output printed just before it reach the notebook.

This module runs in the kernel process, which may not be able to import this package
(a confined kernel sees only the Python installation): `kernel_code` gives its source
as one statement that `sandbox_magic.server.kernels.prepare_python` runs, in a
namespace of its own, so it leaves no names in the user's. It imports nothing but the
standard library and IPython (and tqdm or Altair when the code imports them).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import math
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

__all__ = ["INPUT_MESSAGE", "VALUE_MIME", "install", "kernel_code", "plain_value"]

#: MIME type carrying the JSON value of a main result (never shown by frontends).
VALUE_MIME: Final = "application/vnd.sandbox-magic.value+json"
#: Largest value carried as JSON, in bytes of JSON text.
MAX_VALUE_BYTES: Final = 256 * 1024
_MAX_DEPTH: Final = 20

INPUT_MESSAGE: Final = (
    "interactive input is not available in %%sandbox cells: the code runs remotely and "
    "nobody can type into it. Put the value in the code, set it with "
    "`%%sandbox --env NAME=VALUE` (or --secret-env NAME for a password), or send a "
    "local variable with `%%sandbox --push NAME`."
)

_TEXT_BAR_MODULES: Final = frozenset({"tqdm.notebook", "tqdm.autonotebook"})


def plain_value(obj: Any) -> Any:
    """``{"value": obj}`` when ``obj`` is plain JSON data of exact builtin types, else None."""
    if not _is_plain(obj, 0):
        return None
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_VALUE_BYTES:
        return None
    return {"value": obj}


def _is_plain(obj: Any, depth: int) -> bool:
    kind = type(obj)
    if obj is None or kind in (bool, int, str):
        return True
    if kind is float:
        return math.isfinite(obj)
    if depth >= _MAX_DEPTH:
        return False
    if kind is list:
        return all(_is_plain(item, depth + 1) for item in obj)
    if kind is dict:
        return all(type(k) is str and _is_plain(v, depth + 1) for k, v in obj.items())
    return False


class _TextBarLoader(importlib.abc.Loader):
    """Builds ``tqdm.notebook``/``tqdm.autonotebook`` as aliases of the text bar."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        from tqdm.std import tqdm, trange  # type: ignore[import-untyped]

        module.tqdm = module.tqdm_notebook = tqdm  # type: ignore[attr-defined]
        module.trange = module.tnrange = trange  # type: ignore[attr-defined]
        module.__all__ = ["tqdm", "tqdm_notebook", "trange", "tnrange"]  # type: ignore[attr-defined]


class _AfterImport(importlib.abc.Loader):
    """Wraps a real loader and calls ``then(module)`` once the module has run."""

    def __init__(self, loader: Any, then: Callable[[types.ModuleType], None]) -> None:
        self._loader = loader
        self._then = then

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: types.ModuleType) -> None:
        self._loader.exec_module(module)
        with contextlib.suppress(Exception):  # a hook must never break the user's import
            self._then(module)


def _prefer_altair_mimetype(module: types.ModuleType) -> None:
    module.renderers.enable("mimetype")


_AFTER: Final[dict[str, Callable[[types.ModuleType], None]]] = {
    "altair": _prefer_altair_mimetype,
}


class _SandboxImports(importlib.abc.MetaPathFinder):
    """Swaps the widget progress bars for text ones; runs hooks after some imports."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: types.ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in _TEXT_BAR_MODULES:
            return importlib.util.spec_from_loader(fullname, _TextBarLoader())
        then = _AFTER.get(fullname)
        if then is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _AfterImport(spec.loader, then)
                return spec
        return None


def _install_imports() -> None:
    if not any(isinstance(finder, _SandboxImports) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SandboxImports())
    for name, then in _AFTER.items():
        if name in sys.modules:  # imported already (a warm kernel reused)
            with contextlib.suppress(Exception):
                then(sys.modules[name])


def _install_value_formatter(shell: Any) -> None:
    from IPython.core.formatters import BaseFormatter
    from traitlets import Unicode

    class ValueFormatter(BaseFormatter):
        format_type = Unicode(VALUE_MIME)

        def __call__(self, obj: Any) -> Any:
            return plain_value(obj) if self.enabled else None

    formatters = shell.display_formatter.formatters
    if VALUE_MIME not in formatters:
        formatters[VALUE_MIME] = ValueFormatter(parent=shell.display_formatter)


def _no_input(*_args: Any, **_kwargs: Any) -> str:
    from IPython.core.error import StdinNotImplementedError

    raise StdinNotImplementedError(INPUT_MESSAGE)


def _install_no_input(shell: Any) -> None:
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        # ipykernel points builtins.input and getpass.getpass at these for each request.
        kernel.raw_input = _no_input
        kernel.getpass = _no_input


def _install_exit_flush(shell: Any) -> None:
    """``os._exit`` first hands the output printed so far to the notebook.

    Output travels through ipykernel's I/O thread and ZeroMQ; a process that ends
    with ``os._exit`` right after ``print(..., flush=True)`` can end before either
    sent it. The wrapper flushes, waits (at most a second) for the I/O thread to
    catch up, and gives ZeroMQ a moment to put the message on the wire.
    """
    import os
    import threading
    import time

    real_exit = os._exit
    if getattr(real_exit, "_sandbox_magic", False):
        return
    kernel = getattr(shell, "kernel", None)
    pub_thread = getattr(kernel, "iopub_thread", None)

    def exit_after_output(status: int) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
            if pub_thread is not None:
                done = threading.Event()
                pub_thread.schedule(done.set)
                done.wait(1.0)
            time.sleep(0.05)
        real_exit(status)

    exit_after_output._sandbox_magic = True  # type: ignore[attr-defined]
    os._exit = exit_after_output  # type: ignore[assignment]


def install() -> None:
    """Set this kernel up (idempotent); see the module docstring."""
    _install_imports()
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    _install_value_formatter(shell)
    _install_no_input(shell)
    _install_exit_flush(shell)


def kernel_code() -> str:
    """One statement that runs `install` in a kernel, from this module's source."""
    source = Path(__file__).read_text(encoding="utf-8") + "\ninstall()\n"
    return (
        f"exec(compile({source!r}, 'sandbox-magic-kernel-side', 'exec'), "
        "{'__name__': 'sandbox_magic_kernel_side'})"
    )
