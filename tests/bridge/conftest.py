"""Fixtures for the output bridge tests: a real IPython shell."""

from __future__ import annotations

import IPython
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.testing.globalipapp import start_ipython


@pytest.fixture(scope="session")
def ip() -> InteractiveShell:
    """The process-wide test shell, shared with other test packages.

    ``start_ipython()`` returns None when another package started it already.
    """
    shell = start_ipython() or IPython.get_ipython()
    assert isinstance(shell, InteractiveShell)
    return shell
