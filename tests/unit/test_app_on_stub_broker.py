"""The actors run in-process on dramatiq's StubBroker: no RabbitMQ, a real receiver on 127.0.0.1.

``build`` registers the same actors a worker process runs on any broker; here a
dramatiq ``Worker`` consumes them from a ``StubBroker``, with subscriptions in a
SQLite file and webhooks POSTed to a pytest-httpserver receiver. What the
actors record for the delivery log is kept by a fake log queue.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dramatiq
import pika
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.encoder import PickleEncoder
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook

from producer.event import Event
from workers.app import App, build
from workers.broker import heldacks
from workers.broker.topology import RawEvent, Topology
from workers.deliverylog.records import AttemptRecord, DeliveryState, EventRecord, Record
from workers.errors import DelayNotStored, RecordsNotStored
from workers.middleware.fail_on_error import FailOnError
from workers.pipeline.delivery import Delivery, webhook_payload
from workers.settings import Settings
from workers.subscriptions import db, migrating
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import Subscription, SubscriptionStore

# Nothing listens there: a delay batch sent to RabbitMQ fails at once, and only on loopback.
NO_RABBITMQ = "amqp://guest:guest@127.0.0.1:1/%2F"
JOIN_MS = 10_000


@dataclass
class Publisher:
    """Records what would be parked in RabbitMQ, confirmed."""

    topology: Topology
    parked: list[tuple[str, bytes, pika.BasicProperties]] = field(default_factory=list)

    def publish_confirmed(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None:
        self.parked.append((queue, body, properties))


@dataclass
class LogQueue:
    """Keeps what each actor message recorded, as one item, stored at once (or refused, if ``down``)."""

    items: list[list[Record]] = field(default_factory=list)
    down: bool = False

    def send(self, records: Sequence[Record]) -> Future[None]:
        stored: Future[None] = Future()
        if self.down:
            stored.set_exception(RecordsNotStored("not stored"))
        else:
            self.items.append(list(records))
            stored.set_result(None)
        return stored


@pytest.fixture
def log_queue() -> LogQueue:
    return LogQueue()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    database_url = f"sqlite:///{tmp_path / 'hookline.db'}"
    migrating.migrate(database_url)
    return Settings(
        database_url=database_url,
        amqp_url=NO_RABBITMQ,
        queue_prefix="stub",
        allow_private_networks=True,  # the receiver is on loopback
        http_timeout=2.0,
    )


@pytest.fixture
def store(settings: Settings) -> Iterator[SubscriptionStore]:
    engine = db.create_engine(settings.database_url)
    yield SubscriptionStore(engine, SecretBox.from_settings(settings))
    engine.dispose()


@pytest.fixture
def publisher(settings: Settings) -> Publisher:
    return Publisher(Topology.from_settings(settings))


@pytest.fixture
def app(settings: Settings, publisher: Publisher, log_queue: LogQueue) -> Iterator[App]:
    built = build(settings, broker=StubBroker(middleware=[]), publisher=publisher, records=log_queue)
    yield built
    built.close()


@pytest.fixture
def pickled_messages() -> Iterator[None]:
    """Messages the StubBroker stores are pickled instead of JSON, for the duration of a test.

    In production the events consumer wraps each body into a fan_out message in
    memory, never encoded (workers/broker/rabbitmq.py); the StubBroker encodes
    every message with dramatiq's global encoder, and JSON cannot hold the
    RawEvent's bytes. Pickling lets the same message go through the stub queue.
    """
    previous = dramatiq.get_encoder()
    dramatiq.set_encoder(PickleEncoder())
    yield
    dramatiq.set_encoder(previous)


@contextmanager
def consuming(app: App) -> Iterator[StubBroker]:
    """The app started, and a dramatiq worker consuming its queues, as in a worker process."""
    app.start()
    worker = dramatiq.Worker(app.broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        assert isinstance(app.broker, StubBroker)
        yield app.broker
    finally:
        worker.stop()


def receiver_url(httpserver: HTTPServer, path: str) -> str:
    return f"http://127.0.0.1:{httpserver.port}{path}"


def delivery_for(subscription: Subscription, data: dict[str, Any], **changes: Any) -> dict[str, Any]:
    event = Event.create("order.created", data)
    message = Delivery.for_event(event, subscription.id, webhook_payload(event)).to_message()
    return {**message, **changes}


def verified(subscription: Subscription, httpserver: HTTPServer, path: str) -> list[Any]:
    """The data of each webhook ``path`` received, each checked against its Standard Webhooks signature."""
    requests = [request for request, _ in httpserver.log if request.path == path]
    return [Webhook(subscription.secret).verify(r.get_data(), dict(r.headers))["data"] for r in requests]


def test_the_retry_actor_delivers_each_webhook_of_a_batch_from_a_delay_queue(
    app: App, store: SubscriptionStore, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/retried", method="POST").respond_with_data("", status=204)
    subscription = store.add(receiver_url(httpserver, "/retried"), ["order.*"])
    batch = [delivery_for(subscription, {"n": n}, attempt=2, not_before=0.0) for n in range(3)]
    with consuming(app) as broker:
        app.retry.send(deliveries=batch)
        broker.join(app.retry.queue_name, timeout=JOIN_MS)
    assert sorted(data["n"] for data in verified(subscription, httpserver, "/retried")) == [0, 1, 2]


def test_the_fan_out_actor_delivers_a_raw_event_to_each_matching_subscription(
    app: App, store: SubscriptionStore, httpserver: HTTPServer, pickled_messages: None
) -> None:
    httpserver.expect_request("/a", method="POST").respond_with_data("ok")
    httpserver.expect_request("/b", method="POST").respond_with_data("ok")
    first = store.add(receiver_url(httpserver, "/a"), ["order.*"])
    second = store.add(receiver_url(httpserver, "/b"), ["#"])
    store.add(receiver_url(httpserver, "/c"), ["user.*"])
    event = Event.create("order.created", {"order": 42})
    raw = RawEvent(body=event.to_json(), routing_key=event.type, redelivered=False)
    with consuming(app) as broker:
        app.fan_out.send(raw)
        broker.join(app.fan_out.queue_name, timeout=JOIN_MS)
    assert verified(first, httpserver, "/a") == [{"order": 42}]
    assert verified(second, httpserver, "/b") == [{"order": 42}]
    assert len(httpserver.log) == 2
    [(request, _)] = [entry for entry in httpserver.log if entry[0].path == "/a"]
    assert request.headers["webhook-id"] == event.id


def test_an_event_and_its_first_attempts_are_recorded_as_one_item_of_the_log_queue(
    app: App, store: SubscriptionStore, httpserver: HTTPServer, log_queue: LogQueue, pickled_messages: None
) -> None:
    httpserver.expect_request("/a", method="POST").respond_with_data("thanks", status=202)
    httpserver.expect_request("/b", method="POST").respond_with_data("gone", status=410)
    first = store.add(receiver_url(httpserver, "/a"), ["order.*"])
    second = store.add(receiver_url(httpserver, "/b"), ["order.*"])
    event = Event.create("order.created", {"order": 42})
    with consuming(app) as broker:
        app.fan_out.send(RawEvent(body=event.to_json(), routing_key=event.type, redelivered=False))
        broker.join(app.fan_out.queue_name, timeout=JOIN_MS)
    [item] = log_queue.items
    [received] = [record for record in item if isinstance(record, EventRecord)]
    assert (received.id, received.matched) == (event.id, 2)
    attempts = {record.subscription_id: record for record in item if isinstance(record, AttemptRecord)}
    assert (attempts[first.id].state, attempts[first.id].status) == (DeliveryState.DELIVERED, 202)
    assert attempts[first.id].response_body == "thanks"
    assert (attempts[second.id].state, attempts[second.id].status) == (DeliveryState.DEAD_LETTERED, 410)
    assert attempts[second.id].response_body == "gone"


def test_with_the_log_off_nothing_is_recorded_and_the_event_is_delivered(
    settings: Settings, store: SubscriptionStore, httpserver: HTTPServer, pickled_messages: None
) -> None:
    httpserver.expect_request("/a", method="POST").respond_with_data("ok")
    subscription = store.add(receiver_url(httpserver, "/a"), ["order.*"])
    off = settings.model_copy(update={"log_enabled": False})
    app = build(off, broker=StubBroker(middleware=[]), publisher=Publisher(Topology.from_settings(off)))
    assert app.resources.record_batcher is None
    event = Event.create("order.created", {"order": 1})
    try:
        with consuming(app) as broker:
            app.fan_out.send(RawEvent(body=event.to_json(), routing_key=event.type, redelivered=False))
            broker.join(app.fan_out.queue_name, timeout=JOIN_MS)
    finally:
        app.close()
    assert verified(subscription, httpserver, "/a") == [{"order": 1}]


def test_a_message_whose_records_were_not_stored_is_rejected_not_acked(
    app: App, store: SubscriptionStore, httpserver: HTTPServer, log_queue: LogQueue
) -> None:
    httpserver.expect_request("/ok", method="POST").respond_with_data("ok")
    subscription = store.add(receiver_url(httpserver, "/ok"), ["#"])
    log_queue.down = True
    with consuming(app) as broker:
        app.retry.send(**delivery_for(subscription, {"n": 1}))
        with pytest.raises(RecordsNotStored):
            broker.join(app.retry.queue_name, timeout=JOIN_MS)
    assert len(broker.dead_letters) == 1


def test_a_raw_event_that_is_not_an_event_is_parked_through_the_publisher_with_its_reason(
    app: App, publisher: Publisher, pickled_messages: None
) -> None:
    garbage = RawEvent(body=b"\xff not json", routing_key="order.created", redelivered=False)
    with consuming(app) as broker:
        app.fan_out.send(garbage)
        broker.join(app.fan_out.queue_name, timeout=JOIN_MS)
    [(queue, body, properties)] = publisher.parked
    assert (queue, body) == ("stub.events.invalid", garbage.body)
    assert properties.headers is not None
    assert properties.headers["x-hookline-routing-key"] == "order.created"


def test_a_delivery_given_up_on_the_stub_is_parked_as_a_dead_letter(
    app: App, store: SubscriptionStore, publisher: Publisher, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/gone", method="POST").respond_with_data("", status=410)
    subscription = store.add(receiver_url(httpserver, "/gone"), ["#"])
    with consuming(app) as broker:
        app.retry.send(**delivery_for(subscription, {"n": 1}))
        broker.join(app.retry.queue_name, timeout=JOIN_MS)
    [(queue, body, _)] = publisher.parked
    assert queue == "stub.deliveries.dead"
    assert json.loads(body)["cause"] == "permanent"


def test_a_message_whose_delivery_could_not_be_sent_to_wait_is_rejected_not_acked(
    app: App, store: SubscriptionStore, httpserver: HTTPServer
) -> None:
    subscription = store.add(receiver_url(httpserver, "/later"), ["#"])
    not_yet = delivery_for(subscription, {"n": 1}, attempt=2, not_before=datetime.now(UTC).timestamp() + 60)
    with consuming(app) as broker:
        app.retry.send(deliveries=[not_yet])
        with pytest.raises(DelayNotStored):
            broker.join(app.retry.queue_name, timeout=JOIN_MS)  # raises what rejected the message
    [rejected] = broker.dead_letters
    assert rejected.kwargs == {"deliveries": [not_yet]}
    assert httpserver.log == []


def test_on_the_stub_an_actor_waits_for_what_it_handed_on_and_holds_nothing_for_the_next_message(
    app: App, store: SubscriptionStore, httpserver: HTTPServer
) -> None:
    # Only the HooklineBroker's consumer takes held futures at the ack: futures held on another
    # broker would stay on the worker thread and delay (or reject) the next message's ack.
    subscription = store.add(receiver_url(httpserver, "/later"), ["#"])
    app.start()
    not_yet = delivery_for(subscription, {"n": 1}, attempt=2, not_before=datetime.now(UTC).timestamp() + 60)
    with pytest.raises(DelayNotStored):
        app.retry(deliveries=[not_yet])  # the actor's own code, on this thread
    assert heldacks.take() == []


def test_building_the_app_connects_nothing_and_starts_no_thread(tmp_path: Path) -> None:
    database = tmp_path / "unopened.db"
    threads = threading.active_count()
    settings = Settings(database_url=f"sqlite:///{database}", amqp_url=NO_RABBITMQ)
    broker = StubBroker(middleware=[])
    app = build(settings, broker=broker)
    assert threading.active_count() == threads
    # The engine may create the file empty (and private) ahead of SQLite; opening it writes to it.
    assert not database.exists() or database.stat().st_size == 0
    assert not database.with_name("unopened.db-wal").exists()
    assert {"fan_out", "retry"} <= broker.get_declared_actors()
    # hookline's actors never let dramatiq ack the message of an actor that raised.
    assert any(isinstance(middleware, FailOnError) for middleware in broker.middleware)
    app.close()
