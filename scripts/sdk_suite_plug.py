"""Pytest plugin loaded into the SDK's own integration suites (``-p sdk_suite_plug``).

It does one thing: skip the suites' port-8888 readiness probe
(``wait_for_code_interpreter_ready`` and its async twin). The hosted VM runs a
Jupyter server on that port; the local server has none and needs none, since its
kernels are ready when a context is created. Everything else in the suites runs
unchanged.
"""

from __future__ import annotations

import importlib
from typing import Any


def _ready(_sandbox: Any) -> None:
    """The local server's kernels answer as soon as a context exists."""


async def _ready_async(_sandbox: Any) -> None:
    """The async twin of `_ready`."""


def pytest_configure(config: Any) -> None:
    # Patched before collection, so the test modules' ``from ... import`` get these.
    helpers = importlib.import_module("tests.integration_helpers")
    helpers.wait_for_code_interpreter_ready = _ready
    helpers.wait_for_code_interpreter_ready_async = _ready_async
