"""Write the last batched log lines when a worker process stops (see workers/logbatch.py)."""

from __future__ import annotations

from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

from workers.observability.logbatch import BatchedLines


class DrainLogs(Middleware):
    def __init__(self, lines: BatchedLines) -> None:
        self.lines = lines

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook signature
        # The process exits right after (multiprocessing's os._exit): no atexit hook would run.
        self.lines.drain()
