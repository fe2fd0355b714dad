"""Store what the batchers hold, and send the acks it holds up, before a worker's consumers close.

When the worker begins to stop, the deliveries of a retry batch not yet
attempted are sent back to wait instead (workers/pipeline/attempts.py), so a
batch of 50 slow deliveries does not hold the shutdown up.

dramatiq stops its worker threads first, then each consumer thread, then
closes the consumers' connections (after the acks already scheduled on them).
Between the last two, everything handed to a batcher (the delay batcher, the
record batcher) must be stored, so that the acks it holds
(workers/broker/heldacks.py) go out instead of the messages being redelivered
and their deliveries sent twice.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

from workers.observability.logs import get_logger

log = get_logger(component="worker")
DRAIN_SECONDS = 30.0


class Drainable(Protocol):
    """A batcher: sends what it holds without lingering, and says whether all was settled in time."""

    def drain(self, timeout: float) -> bool: ...


class DrainBatches(Middleware):
    def __init__(self, batchers: Sequence[Drainable], stopping: threading.Event) -> None:
        self.batchers = list(batchers)
        self.stopping = stopping

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook signature
        self.stopping.set()  # deliveries of a batch not yet attempted go back to wait, see attempts.run

    def before_consumer_thread_shutdown(self, broker: Broker, thread: Any) -> None:  # noqa: ARG002 - dramatiq's hook signature
        for batcher in self.batchers:
            if not batcher.drain(DRAIN_SECONDS):
                log.warning("batches_not_drained", batcher=type(batcher).__name__, seconds=DRAIN_SECONDS)
