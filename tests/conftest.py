"""What every test keeps as it found it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

PROCESS_ENVIRONMENT = os.environ


@pytest.fixture(autouse=True)
def _process_environment_kept() -> Iterator[None]:
    """``os.environ`` is still the process environment after the test. A test client that swaps it for a copy
    while it handles a request (chalice's does) and is left holding the copy — two requests at once can do it —
    leaves later tests setting variables that no subprocess ever sees."""
    yield
    swapped = os.environ is not PROCESS_ENVIRONMENT
    os.environ = PROCESS_ENVIRONMENT  # noqa: B003 - the real one back, so the next tests start from it
    assert not swapped, "the test left os.environ replaced by a copy; subprocesses would not see its variables"
