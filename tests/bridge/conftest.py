"""Fixtures for the output bridge tests: a real IPython shell."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython


@pytest.fixture(scope="session")
def ip() -> InteractiveShell:
    shell = start_ipython()
    assert shell is not None
    return shell
