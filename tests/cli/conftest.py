from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def keep_root_logger() -> Iterator[None]:
    """`main()` and configure_logging() replace the root logger's handlers: put pytest's
    back, or later tests would log to a stream that capture has closed."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
