"""The actors wired to a broker (:func:`build`), and what each worker process runs first (:func:`boot`).

``fan_out`` consumes the events queue (raw events, see workers/broker/rabbitmq.py)
and makes each delivery's first attempt itself (:mod:`workers.pipeline.attempts`).
``retry`` consumes the retries queue: deliveries back from a delay queue after a
failure or a busy endpoint, many to a message (workers/broker/delaybatch.py), and
those ``hookline dlq replay`` resends, one to a message. So a backlog of retries
never holds up fresh deliveries. The logic lives in :mod:`workers.pipeline`; this
module wires it to dramatiq, RabbitMQ, the database and the HTTP pool. What each
actor message produced for the delivery log is published to the log queue as one
item (workers/broker/recordbatch.py), and the message is acked only once it is
stored, like what it handed on to a delay queue (unless ``HOOKLINE_LOG_ENABLED``
is false: then nothing is recorded).

:func:`build` connects nothing and starts no thread, and importing this module
does nothing either: a test builds the app on dramatiq's ``StubBroker`` and runs
the actors in-process. ``hookline worker`` runs dramatiq's CLI with
``workers.app:boot``, which dramatiq calls in each worker process before it
consumes from ``dramatiq.get_broker()``. :func:`boot` reads the settings,
configures logging and metrics, opens the database and the HTTP pool and
declares the topology: a process that cannot do all of that fails at boot instead
of on its first message. ``hookline worker`` checks the same things in the parent
first, so the user sees one clear line. Under ``hookline worker`` with metrics on,
it also starts this process's heartbeat, which the parent's ``/healthz`` and
``/readyz`` read.
"""

from __future__ import annotations

import gc
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TextIO, cast

import dramatiq
import pika

from producer.settings import load
from workers.broker import changes, delaybatch, heldacks, rabbitmq, recordbatch
from workers.broker.delaybatch import DelayBatcher
from workers.broker.rabbitmq import HooklineBroker
from workers.broker.recordbatch import RecordBatcher
from workers.broker.topology import FAN_OUT_ACTOR, RETRY_ACTOR, RawEvent, Topology
from workers.deliverylog.records import Record
from workers.middleware import heartbeat as heartbeats
from workers.middleware.drain_batches import DrainBatches
from workers.middleware.drain_logs import DrainLogs
from workers.middleware.fail_on_error import FailOnError
from workers.observability import logs, metrics
from workers.observability.logbatch import BatchedLines
from workers.outbound import http, isolation, webhook
from workers.pipeline import attempts, deadletters, delivery, fanout, waiting
from workers.pipeline.attempts import Settled
from workers.pipeline.retry_policy import RetryPolicy
from workers.pipeline.sparethreads import SpareThreads
from workers.settings import Settings
from workers.subscriptions import db, migrating
from workers.subscriptions.autodisable import SubscriptionHealth
from workers.subscriptions.cache import SubscriptionCache
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import Subscription, SubscriptionStore

# What an actor does with what settling its message left: held stores and records (see _hand_on).
HandOn = Callable[[Settled], None]


class RecordSender(Protocol):
    """Stores one actor message's records in the log queue: :class:`RecordBatcher` (a fake in tests).

    The future is done once RabbitMQ stored them; the message is acked only then.
    """

    def send(self, records: Sequence[Record]) -> Future[None]: ...


class Resources:
    """Per-process state the actors share: subscription cache, HTTP pool, spare threads, batchers.

    Built in each worker process after it forked (dramatiq calls :func:`boot` in
    every child), so no connection, pool or thread crosses a fork. Building opens
    nothing: :meth:`start` opens the database; the HTTP pool, the spare threads and
    the batchers connect or start their threads on first use.
    """

    def __init__(self, settings: Settings, topology: Topology) -> None:
        self.topology = topology
        # Set when the worker begins to shut down: what has not been attempted yet waits in RabbitMQ.
        self.stopping = threading.Event()
        self.engine = db.create_engine(settings.database_url)
        store = SubscriptionStore(self.engine, SecretBox.from_settings(settings))
        self.subscriptions = SubscriptionCache(
            store, settings.subscription_refresh_seconds, on_tick=metrics.subscriptions_snapshot_age
        )
        self.http_client: http.DeliveryClient = http.build_client(settings)
        # The first attempts of an event with several subscriptions, made side by side.
        self.spare_threads = SpareThreads(settings.fan_out_concurrency, "first-attempt")
        # Sends deliveries that must wait to the delay queues, many to a message.
        self.delay_batcher = DelayBatcher(delaybatch.connector(settings.amqp_url), topology.retries_queue)
        # Sends each actor message's records to the log queue, many messages' to a log message.
        self.record_batcher = (
            RecordBatcher(recordbatch.connector(settings.amqp_url), topology.log_queue)
            if settings.log_enabled
            else None
        )

    def start(self) -> None:
        """Open the database now, so a bad one fails the process at boot, not on the first event."""
        migrating.ensure_migrated(self.engine)
        self.subscriptions.start()

    def close(self) -> None:
        """Stop refreshing subscriptions, close the HTTP pool and the database (for tests: a worker exits)."""
        self.subscriptions.stop()
        self.http_client.close()
        self.engine.dispose()


@dataclass(frozen=True)
class App:
    """The actors, the broker they are registered on, and the per-process state they share."""

    broker: dramatiq.Broker
    resources: Resources
    fan_out: dramatiq.Actor[..., Any]
    retry: dramatiq.Actor[..., Any]

    def start(self) -> None:
        self.resources.start()

    def close(self) -> None:
        self.resources.close()


def hookline_broker(settings: Settings) -> HooklineBroker:
    """The RabbitMQ broker of a worker process; it connects on first use."""
    # Only FailOnError: every default middleware costs time per message, and
    # none is needed (retries wait in RabbitMQ, not in dramatiq's delay queue).
    topology = Topology.from_settings(settings)
    return HooklineBroker(topology=topology, url=settings.amqp_url, middleware=[FailOnError()])


def build(
    settings: Settings,
    *,
    broker: dramatiq.Broker | None = None,
    publisher: deadletters.ConfirmedPublisher | None = None,
    records: RecordSender | None = None,
) -> App:
    """The actors registered on ``broker`` (a :func:`hookline_broker` by default); nothing is connected.

    A test passes dramatiq's ``StubBroker(middleware=[])``. Dead letters and
    invalid events are parked through ``publisher``: by default the broker, if it
    is a HooklineBroker; on any other broker parking raises, so the message is
    rejected instead of acked, unless the test passes a publisher. Records go to
    ``records``: by default the log queue, through the process's record batcher
    (none with ``HOOKLINE_LOG_ENABLED=false``); a test passes a fake.
    """
    topology = Topology.from_settings(settings)
    broker = hookline_broker(settings) if broker is None else broker
    if not any(isinstance(each, FailOnError) for each in broker.middleware):
        broker.add_middleware(FailOnError())  # without it dramatiq acks the message of an actor that raised
    if publisher is None:
        publisher = broker if isinstance(broker, HooklineBroker) else _CannotPark(topology)
    resources = Resources(settings, topology)
    attempt = _attempts(settings, resources, publisher)
    hand_on = _hand_on(broker, records or resources.record_batcher)
    fan_out = _fan_out(settings, resources, attempt, publisher, hand_on)
    retry = _retry(resources, attempt, hand_on)
    return App(
        broker,
        resources,
        fan_out=_actor(broker, topology.events_queue, FAN_OUT_ACTOR, fan_out),
        retry=_actor(broker, topology.retries_queue, RETRY_ACTOR, retry),
    )


def boot() -> App:
    """Make this worker process ready to consume: dramatiq's CLI calls it (``workers.app:boot``)."""
    settings = load(Settings)
    log_lines = _log_to_stderr(settings)
    metrics.configure(settings)
    broker = hookline_broker(settings)
    app = build(settings, broker=broker)
    dramatiq.set_broker(broker)  # what the CLI consumes from once this returns
    rabbitmq.declare(broker)
    app.start()
    exchange = app.resources.topology.subscription_changes_exchange
    changes.Listener(settings.amqp_url, exchange, app.resources.subscriptions.refresh_soon).start()
    heartbeats.attach(broker)
    batchers = [app.resources.delay_batcher, app.resources.record_batcher]
    broker.add_middleware(DrainBatches([each for each in batchers if each], app.resources.stopping))
    broker.add_middleware(DrainLogs(log_lines))
    # What exists by now (modules, settings, the app) lives as long as the process. Frozen, the
    # collector's full passes no longer walk it: in a worker's first seconds they paused its
    # deliveries for tens of milliseconds (docs/performance.md, "Latency at half the maximum").
    gc.collect()
    gc.freeze()
    return app


def _log_to_stderr(settings: Settings) -> BatchedLines:
    # dramatiq points a child's sys.stderr at a pipe that its parent reads and copies to the real
    # stderr: two processes' work for every line. Children write to the inherited stderr themselves,
    # as gunicorn's do, in batches of whole lines (atomic on a pipe; see workers/logbatch.py).
    log_lines = BatchedLines(sys.__stderr__ or sys.stderr)
    logs.configure(settings, stream=cast(TextIO, log_lines))  # it has what loggers use: write, flush, isatty
    return log_lines


def _attempts(
    settings: Settings, resources: Resources, publisher: deadletters.ConfirmedPublisher
) -> attempts.Attempts:
    retention = settings.dead_letter_retention
    retention_ms = None if retention is None else int(retention * 1000)
    return attempts.Attempts(
        subscriptions=resources.subscriptions,
        send_webhook=partial(webhook.send, resources.http_client, timeout=settings.http_timeout),
        send_to_wait=partial(waiting.wait_in_broker, resources.delay_batcher, resources.topology),
        park=partial(deadletters.park_delivery, publisher, retention_ms=retention_ms),
        health=SubscriptionHealth(
            resources.subscriptions.store,
            settings.auto_disable_after,
            attempts.log,
            # Every other process stops delivering to it at once, not at its next periodic reload.
            on_disabled=partial(
                changes.announce, settings.amqp_url, resources.topology.subscription_changes_exchange
            ),
        ),
        policy=RetryPolicy.from_settings(settings),
        endpoints=isolation.Endpoints(
            max_in_flight=settings.endpoint_max_in_flight,
            failure_threshold=settings.breaker_failures,
            cooldown=settings.breaker_cooldown,
        ),
        stopping=resources.stopping,
        waits=attempts.Waits.from_settings(settings),
    )


def _fan_out(
    settings: Settings,
    resources: Resources,
    attempt: attempts.Attempts,
    publisher: deadletters.ConfirmedPublisher,
    hand_on: HandOn,
) -> Callable[[RawEvent], None]:
    def fan_out(raw: RawEvent) -> None:
        settled = Settled()

        def first_attempts(pairs: Sequence[tuple[delivery.Delivery, Subscription]]) -> None:
            attempt.first_attempts(pairs, resources.spare_threads, settled)

        fanout.fan_out(
            raw,
            subscriptions=resources.subscriptions,
            max_bytes=settings.max_event_bytes,
            deliver=first_attempts,
            park=lambda raw, reason: deadletters.park_invalid_event(publisher, raw, reason),
            record=settled.records.append,
        )
        hand_on(settled)

    return fan_out


def _retry(resources: Resources, attempt: attempts.Attempts, hand_on: HandOn) -> Callable[..., None]:
    def deliver(**message: Any) -> None:
        # A batch from a delay queue (workers/broker/delaybatch.py), or one delivery (a replay).
        batch = message.get("deliveries", [message])
        items = [delivery.Delivery.from_message(each) for each in batch]
        hand_on(attempt.run_all(items, resources.spare_threads))

    return deliver


def _actor(
    broker: dramatiq.Broker, queue: str, name: str, fn: Callable[..., None]
) -> dramatiq.Actor[..., Any]:
    return dramatiq.actor(actor_name=name, queue_name=queue, broker=broker)(fn)


def _hand_on(broker: dramatiq.Broker, records: RecordSender | None) -> HandOn:
    """What an actor does, before it returns, with what settling its message left.

    Its records, if any and if the log is on, are handed to ``records``; with
    what it handed on to a delay queue, that makes the futures its ack waits for.
    On a HooklineBroker it holds them: its consumer takes them when dramatiq acks
    the message, on this same thread, and sends the ack once they are stored
    (workers/broker/heldacks.py). No other broker's consumer takes them (the
    StubBroker in tests): held there, they would stay on this thread and be taken
    by the held-ack consumer of whatever message came next. So on any other broker
    nothing is held: the actor waits for them itself, and raises if one was not
    stored, so FailOnError rejects the message, as the held-ack consumer would.
    """
    hold = heldacks.hold if isinstance(broker, HooklineBroker) else _wait_until_stored

    def hand_on(settled: Settled) -> None:
        futures = settled.held
        if records is not None and settled.records:
            futures = [*futures, records.send(settled.records)]
        hold(futures)

    return hand_on


def _wait_until_stored(futures: Sequence[Future[None]]) -> None:
    for future in futures:
        future.result()  # raises DelayNotStored or RecordsNotStored if it was not stored


@dataclass(frozen=True)
class _CannotPark:
    """The publisher on a broker that has no confirmed publish: parking raises, the message is rejected."""

    topology: Topology

    def publish_confirmed(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None:  # noqa: ARG002 - ConfirmedPublisher's signature
        raise RuntimeError(
            f"cannot park in {queue}: this broker cannot publish confirmed (build(publisher=...))"
        )
