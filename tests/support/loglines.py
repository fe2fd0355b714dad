"""Log lines a test can read: structlog configured for JSON into a string, put back afterwards."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

from workers.observability import logs
from workers.settings import Settings


@contextmanager
def json_log_lines() -> Iterator[io.StringIO]:
    """What is logged at INFO and above while inside, as JSON lines."""
    stream = io.StringIO()
    logs.configure(Settings(log_format="json", log_level="INFO"), stream=stream)
    try:
        yield stream
    finally:
        logs.configure(Settings(log_format="json"))
