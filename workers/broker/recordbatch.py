"""Publishing delivery-log records to the log queue, the records of many actor messages to a message.

Each actor message (an event fanned out, a batch of retries) hands over the
records it produced as one item; the message is acked only once they are
stored (workers/broker/heldacks.py), so a worker killed at any moment loses no
record: its message is redelivered and its records made again, with the same
ids. The :class:`~workers.broker.batches.Batcher` gathers what arrives within
:data:`LINGER_SECONDS` into one message per publish, off the worker threads:
the ack waits that long, the webhook does not.

The body is what :func:`workers.deliverylog.records.encode` writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future

import pika

from workers.broker import batches
from workers.deliverylog import records as log_records
from workers.deliverylog.records import AttemptRecord, EventRecord, Record
from workers.errors import RecordsNotStored

# As the delay batches': each log message costs the worker a publish and a confirm, and its batch
# of acks a turn of the consumer's connection thread, so fewer, larger ones leave more CPU for
# deliveries (docs/performance.md, "Issue 17: where a delivery's CPU went"). The prefetch headroom
# of the held acks (workers/broker/rabbitmq.py) covers what a process holds meanwhile.
LINGER_SECONDS = 0.05
MAX_ITEMS = 1000  # actor messages in one log message
MAX_BYTES = 4 * 1024 * 1024  # as a delay batch: a unit of work the recorder holds in memory
CONNECTION_NAME = "hookline log publisher"
RECORD_OVERHEAD_BYTES = 320  # field names, ids, times: about what a record takes beside its texts


def approximate_size(records: Sequence[Record]) -> int:
    """About the bytes ``records`` take encoded: their texts' UTF-8 twice over, as JSON escapes quotes."""
    size = 0
    for record in records:
        size += RECORD_OVERHEAD_BYTES
        if isinstance(record, EventRecord):
            size += 2 * len(record.payload.encode())
        elif isinstance(record, AttemptRecord):
            size += 2 * len(f"{record.response_body or ''}{record.error or ''}".encode())
    return size


def encode(items: Sequence[Sequence[Record]]) -> bytes:
    """One log message holding every record of ``items``, in order."""
    return log_records.encode([record for item in items for record in item])


class RecordBatcher:
    """Hands each actor message's records to the log queue; the future is done once they are stored."""

    def __init__(
        self,
        connect: Callable[[], pika.BlockingConnection],
        log_queue: str,
        *,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self._queue = log_queue
        composer = batches.Composer(
            size=approximate_size, body=encode, not_stored=RecordsNotStored, content_type="application/json"
        )
        self._batcher = batches.Batcher(
            connect, composer, name="log-publisher", linger=linger, max_items=MAX_ITEMS, max_bytes=MAX_BYTES
        )

    def send(self, records: Sequence[Record]) -> Future[None]:
        return self._batcher.send(self._queue, records)

    def drain(self, timeout: float) -> bool:
        return self._batcher.drain(timeout)


def connector(url: str) -> Callable[[], pika.BlockingConnection]:
    """Opens the log publisher's connection (see :func:`workers.broker.batches.connector`)."""
    return batches.connector(url, CONNECTION_NAME)
