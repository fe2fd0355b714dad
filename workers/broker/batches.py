"""Publishing what many threads hand over as few messages, confirmed, from one thread of its own.

A confirmed publish per item would cost RabbitMQ and the worker about as much
CPU as a healthy delivery. So each item is handed to one thread per process
(one per :class:`Batcher`), which gathers those that arrive within ``linger``
seconds, composes each queue's share into one message (up to ``max_items``
items and about ``max_bytes``), and publishes it on its own connection,
confirmed: one publish and one confirm for many items. What arrives while a
publish waits for its confirm goes out in the next one, so batches also grow
with the load.

Callers get a future per item and do not wait for it: the ack of their
message waits instead (workers/broker/heldacks.py), so no worker thread is
held. Two batchers run in a worker process: the delay batches
(:mod:`workers.broker.delaybatch`) and the delivery-log records
(:mod:`workers.broker.recordbatch`); each composes its own messages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.nodes import Nodes, publish_confirmed
from workers.errors import HooklineError

log = logging.getLogger(__name__)

IDLE_TICK_SECONDS = 5.0  # well inside any heartbeat interval RabbitMQ negotiates

T = TypeVar("T")


@dataclass(slots=True)
class _Waiting(Generic[T]):
    queue: str
    item: T
    size: int
    since: float
    future: Future[None] = field(default_factory=Future)


@dataclass(slots=True)
class _Chunk(Generic[T]):
    queue: str
    items: list[_Waiting[T]] = field(default_factory=list)
    size: int = 0

    def takes(self, waiting: _Waiting[T], max_items: int, max_bytes: int) -> bool:
        return len(self.items) < max_items and self.size + waiting.size <= max_bytes


@dataclass(frozen=True)
class Composer(Generic[T]):
    """What a batcher publishes: how big an item is, and the message body of a queue's chunk.

    ``not_stored`` makes the error each caller's future fails with when a chunk was not confirmed.
    """

    size: Callable[[T], int]
    body: Callable[[Sequence[T]], bytes]
    not_stored: Callable[[str], HooklineError]
    content_type: str | None = None


class Batcher(Generic[T]):
    """Publishes items to queues in batches, from one thread with its own connection."""

    def __init__(
        self,
        connect: Callable[[], pika.BlockingConnection],
        composer: Composer[T],
        *,
        name: str,
        linger: float,
        max_items: int,
        max_bytes: int,
    ) -> None:
        self._connect = connect
        self._composer = composer
        self._name = name
        self._linger = linger
        self._max_items = max_items
        self._max_bytes = max_bytes
        self._lock = threading.Condition()
        self._outbox: list[_Waiting[T]] = []
        self._unsettled = 0
        self._hurry = False  # drain() asked: send what is there without lingering
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._thread: threading.Thread | None = None

    def send(self, queue: str, item: T) -> Future[None]:
        """Hand over one item for ``queue``; the future fails (``not_stored``) if it was not stored."""
        waiting = _Waiting(queue, item, self._composer.size(item), time.monotonic())
        waiting.future.set_running_or_notify_cancel()  # a running future cannot be cancelled under us
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._outbox.append(waiting)
            self._unsettled += 1
            if len(self._outbox) == 1 or len(self._outbox) >= self._max_items:
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
                    self._publish(chunk)
            except Exception as exc:  # a bug here must not leave callers' acks held forever
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(
                            self._composer.not_stored(f"{self._name} failed: {exc!r}")
                        )
                log.exception("%s failed", self._name)
            finally:
                with self._lock:
                    self._unsettled -= len(batch)
                    self._lock.notify_all()

    def _next_batch(self) -> list[_Waiting[T]]:
        """Wait for items, then up to ``linger`` more for others to join them; take them all."""
        while True:
            with self._lock:
                if not self._outbox:
                    self._lock.wait(IDLE_TICK_SECONDS)
                if self._outbox:
                    break
            self._keep_alive()
        with self._lock:
            deadline = self._outbox[0].since + self._linger
            while len(self._outbox) < self._max_items and not self._hurry:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._lock.wait(left)
            batch, self._outbox = self._outbox, []
            return batch

    def _chunks(self, batch: list[_Waiting[T]]) -> list[_Chunk[T]]:
        """The batch split per queue, in order, into chunks of at most max_items and ~max_bytes."""
        chunks: list[_Chunk[T]] = []
        filling: dict[str, _Chunk[T]] = {}
        for waiting in batch:
            chunk = filling.get(waiting.queue)
            if chunk is None or not chunk.takes(waiting, self._max_items, self._max_bytes):
                chunk = filling[waiting.queue] = _Chunk(waiting.queue)
                chunks.append(chunk)
            chunk.items.append(waiting)
            chunk.size += waiting.size
        return chunks

    def _publish(self, chunk: _Chunk[T]) -> None:
        try:
            self._send(chunk.queue, self._composer.body([waiting.item for waiting in chunk.items]))
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, every waiting caller must hear of it
            self._close()
            count = len(chunk.items)
            error = self._composer.not_stored(
                f"{count} items not stored in {chunk.queue}: {type(exc).__name__}"
            )
            for waiting in chunk.items:
                waiting.future.set_exception(error)
            log.warning(
                "batch_not_stored: %s queue=%s items=%d error=%r", self._name, chunk.queue, count, exc
            )
            return
        for waiting in chunk.items:
            waiting.future.set_result(None)

    def _send(self, queue: str, body: bytes) -> None:
        properties = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent, content_type=self._composer.content_type
        )

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


def connector(url: str, name: str) -> Callable[[], pika.BlockingConnection]:
    """Opens a batcher's connection, named so that an operator can tell it apart in the management UI.

    ``url`` may name several nodes: a connection that replaces a lost one tries the next node first.
    """
    return Nodes(url, name=name).connect
