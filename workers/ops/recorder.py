"""``hookline recorder``: the process that writes the log queue's records to the delivery log, in bulk.

Workers publish what they did to ``<prefix>.log`` (workers/broker/recordbatch.py).
The recorder consumes it with a large prefetch over plain pika, gathers messages
until it holds ``batch_records`` records or the first of them has waited
``linger`` seconds, writes them in one transaction (``LogStore.write``, which
writes each record once, by its id), and only then acks every message of the
batch at once (``basic.ack`` with ``multiple``). So:

- a recorder killed at any moment loses nothing: what it had not acked is
  redelivered, and written again to the same rows;
- a database that is down or slow delays the log, never a webhook: the
  recorder waits and tries the same batch again, doubling the pause up to
  :data:`MAX_PAUSE`, and acks nothing meanwhile, so the records wait in the
  queue (its depth and ``hookline_recorder_lag_seconds`` show it);
- a message it cannot read, or that the database refuses while it accepts the
  rest, is parked in ``<prefix>.log.invalid`` with its reason in the
  ``x-hookline-reason`` header: never dropped, never tried for ever.

The database call runs on a thread of its own while the consuming thread keeps
answering the broker's heartbeats, so a slow write does not cost the
connection. SIGTERM (:meth:`Recorder.run`'s ``stop``) finishes the batch in
hand, then closes: what was prefetched and not yet taken goes back to the queue.
Retention (``LogStore.enforce_retention``) runs at start and every
``retention_every`` seconds, on a thread of its own.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.nodes import Nodes
from workers.broker.topology import Topology
from workers.deliverylog.records import Record, decode, happened_at
from workers.errors import RecorderError, describe_cause
from workers.observability import metrics
from workers.observability.logs import get_logger
from workers.pipeline.deadletters import PARKED_AT_HEADER, REASON_HEADER
from workers.vocabulary import RecordKind

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

log = get_logger(component="recorder")

TICK_SECONDS = 0.25  # how often an idle recorder looks at its batch, its stop flag and its lag
FIRST_PAUSE = 0.5  # seconds before a failed write is tried again, doubling each time
MAX_PAUSE = 30.0
RECONNECT_PAUSE = 2.0  # after the broker went away
REFUSALS_BEFORE_ISOLATING = 2  # a batch refused while the database answers, this often: written apart
LIVE_WITHIN_SECONDS = 60.0  # /healthz fails once the loop has not come round for this long
REASON_CHARS = 500


class LogWriter(Protocol):
    """Where records go: :class:`workers.deliverylog.store.LogStore` (a fake in unit tests)."""

    def write(self, records: Sequence[Record]) -> object: ...

    def enforce_retention(self) -> object: ...


@dataclass(frozen=True)
class Options:
    batch_records: int = 2000  # records written in one transaction, at most (a message is never split)
    linger: float = 0.2  # seconds a batch waits for more messages after its first
    prefetch: int = 500  # messages the broker sends ahead of the recorder's acks
    retention_every: float = 3600.0
    shutdown_timeout: float = 30.0  # how long SIGTERM waits for a database that does not answer


@dataclass(slots=True)
class _Message:
    tag: int
    body: bytes
    records: list[Record]


@dataclass
class _Batch:
    messages: list[_Message] = field(default_factory=list)
    records: int = 0
    oldest: float | None = None  # Unix time of the oldest record held
    since: float = 0.0  # monotonic time the first message came

    def add(self, message: _Message) -> None:
        if not self.messages:
            self.since = time.monotonic()
        self.messages.append(message)
        self.records += len(message.records)
        times = [happened_at(record) for record in message.records]
        if times:
            self.oldest = min([*times, self.oldest] if self.oldest is not None else times)

    def ready(self, options: Options, now: float) -> bool:
        if not self.messages:
            return False
        return self.records >= options.batch_records or now - self.since >= options.linger

    def all_records(self) -> list[Record]:
        return [record for message in self.messages for record in message.records]


@dataclass(frozen=True)
class RecorderHealth:
    """``/healthz``: the loop comes round. ``/readyz``: it consumes and its last write went through."""

    live: bool
    ready: bool
    problems: list[str]

    def body(self, ready: bool) -> dict[str, object]:
        ok = self.ready if ready else self.live
        return {"status": "ok" if ok else "unavailable", "problems": self.problems}


class Recorder:
    """Consumes the log queue and writes its records in batches (see the module docstring)."""

    def __init__(
        self,
        amqp_url: str,
        topology: Topology,
        writer: LogWriter,
        options: Options | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._nodes = Nodes(amqp_url, name="hookline recorder")
        self._topology = topology
        self._writer = writer
        self._options = options or Options()
        self._clock = clock
        self._database = ThreadPoolExecutor(1, thread_name_prefix="recorder-db")
        self._ticked = time.monotonic()
        self._consuming = False
        self._write_error: str | None = None
        self._batch = _Batch()

    # -- what /metrics, /healthz and /readyz answer from (workers.ops.server.Exposition) -----------

    @property
    def registry(self) -> Collector:
        return metrics.recorder_registry()

    def health(self) -> RecorderHealth:
        problems = []
        stalled = time.monotonic() - self._ticked > LIVE_WITHIN_SECONDS
        if stalled:
            problems.append(f"the recorder's loop has not come round for {LIVE_WITHIN_SECONDS:g} s")
        if not self._consuming:
            problems.append(f"not consuming {self._topology.log_queue}")
        if self._write_error is not None:
            problems.append(f"writing to the delivery log fails: {self._write_error}")
        ready = not stalled and self._consuming and self._write_error is None
        return RecorderHealth(live=not stalled, ready=ready, problems=problems)

    def close(self) -> None:
        self._database.shutdown(wait=False)

    # -- the loop ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume and write until ``stop`` is set, then finish the batch in hand and return."""
        retention = threading.Thread(target=self._retention, args=(stop,), name="retention", daemon=True)
        retention.start()
        while not stop.is_set():
            try:
                self._consume(stop)
            except pika.exceptions.AMQPError as exc:
                # Unacked messages go back to the queue with the connection: nothing is lost.
                self._consuming = False
                self._batch = _Batch()
                log.warning("recorder_connection_lost", error=describe_cause(exc), retry_in=RECONNECT_PAUSE)
                stop.wait(RECONNECT_PAUSE)
        self._consuming = False

    def _consume(self, stop: threading.Event) -> None:
        connection = self._nodes.connect()
        try:
            channel = connection.channel()
            channel.confirm_delivery()  # a parked message is acked only once the broker stored it
            channel.basic_qos(prefetch_count=self._options.prefetch)
            self._consuming = True
            log.info("recorder_consuming", queue=self._topology.log_queue, prefetch=self._options.prefetch)
            for method, _properties, body in channel.consume(
                self._topology.log_queue, inactivity_timeout=TICK_SECONDS
            ):
                if method is not None and method.delivery_tag is not None and body is not None:
                    self.take(channel, method.delivery_tag, body)
                self._tick(connection, channel, stop)
                if stop.is_set() and not self._batch.messages:
                    return
        finally:
            self._consuming = False
            if connection.is_open:
                connection.close()  # what was prefetched and not acked goes back to the queue

    def take(self, channel: BlockingChannel, tag: int, body: bytes) -> None:
        try:
            records = decode(body)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self._park(channel, tag, body, f"not a log message: {exc}")
            return
        self._batch.add(_Message(tag, body, records))

    def _tick(
        self, connection: pika.BlockingConnection, channel: BlockingChannel, stop: threading.Event
    ) -> None:
        self._came_round()
        batch = self._batch
        if batch.ready(self._options, self._ticked) or (stop.is_set() and batch.messages):
            self.settle(connection, channel, stop)
            self._came_round()

    def _came_round(self) -> None:
        """The loop is alive (``/healthz``); the lag is the age of the oldest record held, or 0."""
        self._ticked = time.monotonic()
        oldest = self._batch.oldest
        metrics.recorder_lag(0.0 if oldest is None else self._clock() - oldest)

    # -- writing a batch ---------------------------------------------------------------------------

    def settle(
        self, connection: pika.BlockingConnection, channel: BlockingChannel, stop: threading.Event
    ) -> None:
        """Write the batch and ack it; while the database fails, wait and try again, acking nothing."""
        pause, deadline, refusals = FIRST_PAUSE, None, 0
        while self._batch.messages:
            error = self._write(connection, self._batch.all_records())
            if error is None:
                channel.basic_ack(self._batch.messages[-1].tag, multiple=True)
                self._batch = _Batch()
                return
            if self._write(connection, []) is None:
                # The database answers: it may have come back just now, so once more at once; if it
                # refuses the batch again, find the messages it refuses.
                refusals += 1
                if refusals >= REFUSALS_BEFORE_ISOLATING:
                    self._one_by_one(connection, channel)
                continue
            refusals = 0
            if stop.is_set():
                deadline = deadline or time.monotonic() + self._options.shutdown_timeout
                if time.monotonic() >= deadline:
                    log.error("recorder_stopped_unwritten", messages=len(self._batch.messages), error=error)
                    return  # not acked: redelivered to the next recorder
            log.warning("log_write_failed", error=error, records=self._batch.records, retry_in=pause)
            self._pause(connection, pause, stop)
            pause = min(pause * 2, MAX_PAUSE)

    def _one_by_one(self, connection: pika.BlockingConnection, channel: BlockingChannel) -> None:
        """Write each message alone, parking those the database refuses; stop if it stops answering."""
        while self._batch.messages:
            message = self._batch.messages[0]
            error = self._write(connection, message.records)
            if error is not None:
                error = self._write(connection, message.records)  # a refusal counts once it repeats
            if error is not None and self._write(connection, []) is not None:
                return  # the database went away meanwhile: wait for it with what is left
            if error is None:
                channel.basic_ack(message.tag)
            else:
                self._park(channel, message.tag, message.body, f"the delivery log refused it: {error}")
            remaining = _Batch()
            for later in self._batch.messages[1:]:
                remaining.add(later)
            self._batch = remaining

    def _write(self, connection: pika.BlockingConnection, records: list[Record]) -> str | None:
        """Write ``records`` in one transaction; None, or what went wrong (without a password)."""
        started = time.monotonic()
        written: Future[object] = self._database.submit(self._writer.write, records)
        while not wait([written], timeout=TICK_SECONDS).done:
            connection.process_data_events(0)  # answer the broker's heartbeats while the database works
            self._came_round()
        try:
            written.result()
        except Exception as exc:  # noqa: BLE001 - any failure is retried, then isolated; none may stop the loop
            metrics.record_write_failed()
            self._write_error = describe_cause(exc)[:REASON_CHARS]
            return self._write_error
        self._write_error = None
        if records:
            kinds = Counter(RecordKind(record.kind) for record in records)
            metrics.records_written(dict(kinds), time.monotonic() - started)
        return None

    def _park(self, channel: BlockingChannel, tag: int, body: bytes, reason: str) -> None:
        headers = {REASON_HEADER: reason[:REASON_CHARS], PARKED_AT_HEADER: datetime.now(UTC).isoformat()}
        properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, headers=headers)
        channel.basic_publish("", self._topology.invalid_log_queue, body, properties, mandatory=True)
        channel.basic_ack(tag)
        metrics.log_message_parked()
        log.warning("log_message_parked", queue=self._topology.invalid_log_queue, reason=reason[:200])

    def _pause(self, connection: pika.BlockingConnection, seconds: float, stop: threading.Event) -> None:
        """Wait ``seconds`` answering heartbeats, or less once ``stop`` is set."""
        until = time.monotonic() + seconds
        while time.monotonic() < until and not stop.is_set():
            connection.sleep(min(TICK_SECONDS, until - time.monotonic()))
            self._came_round()

    def _retention(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                report = self._writer.enforce_retention()
            except Exception as exc:  # noqa: BLE001 - the next pass tries again; writing goes on meanwhile
                log.warning("log_retention_failed", error=describe_cause(exc))
            else:
                log.info("log_retention_enforced", report=getattr(report, "to_record", lambda: None)())
            stop.wait(self._options.retention_every)


def declare(amqp_url: str, topology: Topology) -> None:
    """Declare the log queue and its parking queue, as ``hookline setup`` does; RecorderError if it cannot."""
    nodes = Nodes(amqp_url)
    try:
        connection = nodes.connect()
        try:
            channel = connection.channel()
            for queue in (topology.log_queue, topology.invalid_log_queue):
                channel.queue_declare(queue, durable=True, arguments=topology.parking_queue_arguments())
        finally:
            if connection.is_open:
                connection.close()
    except pika.exceptions.AMQPError as exc:
        raise RecorderError(
            f"cannot declare {topology.log_queue} on {nodes.where}: {describe_cause(exc)}"
        ) from exc
