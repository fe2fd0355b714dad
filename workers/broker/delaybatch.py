"""Sending deliveries to the delay queues, many to a message.

Every delivery that must wait (a retry, or a deferral while its endpoint is
busy, stalled or behind an open breaker) is published to a delay queue before
the message that carried it is acked. A confirmed publish per delivery would
cost RabbitMQ and the worker about as much CPU as a healthy delivery, so an
endpoint that hangs, and makes every delivery to it wait, would take the CPU
the healthy endpoints need. So deliveries are handed to one thread per
process, which gathers those that arrive within ``linger`` seconds and
publishes each delay queue's share as one message (``{"deliveries": [...]}``,
for the retry actor), on its own connection, confirmed: one publish and one
confirm for many deliveries.

Callers get a future per delivery and do not wait for it: the ack of their
message waits instead (workers/broker/heldacks.py), so no worker thread is held.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import dramatiq
import pika
import pika.exceptions
from dramatiq import Message
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.nodes import Nodes, publish_confirmed
from workers.broker.topology import RETRY_ACTOR
from workers.errors import DelayNotStored

log = logging.getLogger(__name__)

LINGER_SECONDS = 0.05  # short next to any delay (>= 1 s); long enough to gather a batch under load
MAX_DELIVERIES = 50  # a retries message stays a small unit of work (and of the backlog KEDA counts)
MAX_BYTES = 4 * 1024 * 1024  # far below RabbitMQ's message size limit, whatever the event size
IDLE_TICK_SECONDS = 5.0  # well inside any heartbeat interval RabbitMQ negotiates


@dataclass(slots=True)
class _Waiting:
    queue: str
    delivery: dict[str, Any]
    size: int
    since: float
    future: Future[None] = field(default_factory=Future)


@dataclass(slots=True)
class _Chunk:
    queue: str
    items: list[_Waiting] = field(default_factory=list)
    size: int = 0

    def takes(self, waiting: _Waiting, max_deliveries: int, max_bytes: int) -> bool:
        return len(self.items) < max_deliveries and self.size + waiting.size <= max_bytes


def encoded_size(delivery: dict[str, Any]) -> int:
    """The bytes ``delivery`` takes in a message, as dramatiq's encoder writes it.

    Not its characters: JSON escapes each non-ASCII character (12 bytes for an
    emoji), so a batch counted in characters could be ten times its cap.
    """
    return len(dramatiq.get_encoder().encode(delivery))


class DelayBatcher:
    """Publishes deliveries to delay queues in batches, from one thread with its own connection."""

    def __init__(
        self,
        connect: Callable[[], pika.BlockingConnection],
        retries_queue: str,
        *,
        linger: float = LINGER_SECONDS,
        max_deliveries: int = MAX_DELIVERIES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self._connect = connect
        self._retries_queue = retries_queue
        self._linger = linger
        self._max_deliveries = max_deliveries
        self._max_bytes = max_bytes
        self._lock = threading.Condition()
        self._outbox: list[_Waiting] = []
        self._unsettled = 0
        self._hurry = False  # drain() asked: send what is there without lingering
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._thread: threading.Thread | None = None

    def send(self, queue: str, delivery: dict[str, Any]) -> Future[None]:
        """Hand over one delivery for ``queue``; the future fails with DelayNotStored if it was not stored."""
        waiting = _Waiting(queue, delivery, encoded_size(delivery), time.monotonic())
        waiting.future.set_running_or_notify_cancel()  # a running future cannot be cancelled under us
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="delay-batcher", daemon=True)
                self._thread.start()
            self._outbox.append(waiting)
            self._unsettled += 1
            if len(self._outbox) == 1 or len(self._outbox) >= self._max_deliveries:
                self._lock.notify_all()
        return waiting.future

    def drain(self, timeout: float) -> bool:
        """Send everything handed over without lingering and wait until it is settled; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._hurry = True
            self._lock.notify_all()
            try:
                while self._unsettled:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._lock.wait(left)
                return True
            finally:
                self._hurry = False

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                for chunk in self._chunks(batch):
                    self._publish(chunk.queue, chunk.items)
            except Exception as exc:  # a bug here must not leave callers' acks held forever
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(DelayNotStored(f"delay batcher failed: {exc!r}"))
                log.exception("delay batcher failed")
            finally:
                with self._lock:
                    self._unsettled -= len(batch)
                    self._lock.notify_all()

    def _next_batch(self) -> list[_Waiting]:
        """Wait for deliveries, then up to ``linger`` more for others to join them; take them all."""
        while True:
            with self._lock:
                if not self._outbox:
                    self._lock.wait(IDLE_TICK_SECONDS)
                if self._outbox:
                    break
            self._keep_alive()
        with self._lock:
            deadline = self._outbox[0].since + self._linger
            while len(self._outbox) < self._max_deliveries and not self._hurry:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            batch, self._outbox = self._outbox, []
            return batch

    def _chunks(self, batch: list[_Waiting]) -> list[_Chunk]:
        """The batch split per queue, in order, into chunks of at most max_deliveries and ~max_bytes."""
        chunks: list[_Chunk] = []
        filling: dict[str, _Chunk] = {}
        for waiting in batch:
            chunk = filling.get(waiting.queue)
            if chunk is None or not chunk.takes(waiting, self._max_deliveries, self._max_bytes):
                chunk = filling[waiting.queue] = _Chunk(waiting.queue)
                chunks.append(chunk)
            chunk.items.append(waiting)
            chunk.size += waiting.size
        return chunks

    def _publish(self, queue: str, chunk: list[_Waiting]) -> None:
        message: Message[Any] = Message(
            queue_name=self._retries_queue,
            actor_name=RETRY_ACTOR,
            args=(),
            kwargs={"deliveries": [waiting.delivery for waiting in chunk]},
            options={},
        )
        try:
            self._send(queue, message.encode())
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, every waiting caller must hear of it
            self._close()
            error = DelayNotStored(f"{len(chunk)} deliveries not stored in {queue}: {type(exc).__name__}")
            for waiting in chunk:
                waiting.future.set_exception(error)
            log.warning("delay_batch_not_stored: queue=%s deliveries=%d error=%r", queue, len(chunk), exc)
            return
        for waiting in chunk:
            waiting.future.set_result(None)

    def _send(self, queue: str, body: bytes) -> None:
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)

        def publish() -> None:
            self._open_channel().basic_publish("", queue, body, properties, mandatory=True)

        # The connection may have died since the last batch, its node may stop, or the queue be
        # between leaders: the batch is tried again on a new connection, which starts at the next node.
        publish_confirmed(publish, reconnect=self._close)

    def _keep_alive(self) -> None:
        """While idle, let pika answer heartbeats, so RabbitMQ does not drop the connection."""
        if self._connection is None:
            return
        try:
            self._connection.process_data_events(0)
        except Exception:  # noqa: BLE001 - pika raises AMQPError, or ValueError once closed: drop it either way
            self._close()  # the next batch opens a new one

    def _open_channel(self) -> BlockingChannel:
        if self._channel is None or not self._channel.is_open:
            self._close()
            self._connection = self._connect()
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
        return self._channel

    def _close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with contextlib.suppress(Exception):  # it is being dropped for an error already
                connection.close()


def connector(url: str) -> Callable[[], pika.BlockingConnection]:
    """Opens the batcher's connection, named so that an operator can tell it apart.

    ``url`` may name several nodes: a connection that replaces a lost one tries the next node first.
    """
    return Nodes(url, name="hookline delay batcher").connect
