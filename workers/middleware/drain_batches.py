"""Store the last batched delays, and send their held acks, before a worker's consumers close.

When the worker begins to stop, the deliveries of a retry batch not yet
attempted are sent back to wait instead (workers/attempts.py), so a batch of
50 slow deliveries does not hold the shutdown up.

dramatiq stops its worker threads first, then each consumer thread, then
closes the consumers' connections (after the acks already scheduled on them).
Between the last two, every delivery handed to the delay batcher must be
stored, so that the acks it holds (workers/heldacks.py) go out instead of the
messages being redelivered and their deliveries sent twice.
"""

from __future__ import annotations

import threading
from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

from workers.broker.delaybatch import DelayBatcher
from workers.observability.logs import get_logger

log = get_logger(component="worker")
DRAIN_SECONDS = 30.0


class DrainDelays(Middleware):
    def __init__(self, batcher: DelayBatcher, stopping: threading.Event) -> None:
        self.batcher = batcher
        self.stopping = stopping

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook signature
        self.stopping.set()  # deliveries of a batch not yet attempted go back to wait, see attempts.run

    def before_consumer_thread_shutdown(self, broker: Broker, thread: Any) -> None:  # noqa: ARG002 - dramatiq's hook signature
        if not self.batcher.drain(DRAIN_SECONDS):
            log.warning("delays_not_drained", seconds=DRAIN_SECONDS)
