"""The publisher against the real RabbitMQ on 127.0.0.1: confirms, returns, errors, reconnection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from producer import publisher as publisher_module
from producer.errors import (
    BrokerUnavailable,
    ConfirmTimeout,
    EventNacked,
    EventTooLarge,
    EventUnroutable,
    ExchangeNotFound,
)
from producer.event import Event
from producer.publisher import Publisher
from producer.settings import ProducerSettings

pytestmark = pytest.mark.integration


@dataclass
class Topology:
    """A unique exchange and a queue bound to it, deleted after the test."""

    channel: BlockingChannel
    exchange: str
    queue: str

    def count(self, expected: int, timeout: float = 10) -> int:
        """Messages in the queue, once there are ``expected`` (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            count = self.channel.queue_declare(self.queue, passive=True).method.message_count
            if count >= expected or time.monotonic() > deadline:
                return count
            time.sleep(0.05)


@pytest.fixture
def channel(amqp_connection: pika.BlockingConnection) -> BlockingChannel:
    return amqp_connection.channel()


@pytest.fixture
def topology(channel: BlockingChannel, unique_name: str) -> Iterator[Topology]:
    exchange, queue = f"hookline.test.{unique_name}", f"hookline.test.{unique_name}.events"
    channel.exchange_declare(exchange, "topic", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, exchange, "order.#")
    yield Topology(channel, exchange, queue)
    channel.queue_delete(queue)
    channel.exchange_delete(exchange)


@pytest.fixture
def publisher(amqp_url: str, topology: Topology) -> Iterator[Publisher]:
    with Publisher(ProducerSettings(amqp_url=amqp_url, exchange=topology.exchange)) as publisher:
        yield publisher


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every AMQP connection publishers open from now on, as seen by pika."""
    opened: list[Any] = []

    class Counted(publisher_module._CoalescingConnection):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

    monkeypatch.setattr(publisher_module, "_CoalescingConnection", Counted)
    return opened


def test_a_published_event_is_confirmed_and_stored_as_the_contract_says(
    publisher: Publisher, topology: Topology
) -> None:
    event = Event.create("order.created", {"order_id": 42, "note": "café"})
    publisher.publish(event)
    method, properties, body = topology.channel.basic_get(topology.queue, auto_ack=True)
    assert method is not None, "the confirmed event is not in the queue"
    assert properties is not None
    assert (method.exchange, method.routing_key) == (topology.exchange, "order.created")
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"
    assert properties.message_id == event.id
    assert body == event.to_json()
    assert Event.from_json(body, max_bytes=publisher.settings.max_event_bytes) == event


def test_publish_raises_event_unroutable_when_no_queue_is_bound_for_the_type(
    publisher: Publisher, topology: Topology
) -> None:
    event = Event.create("user.signed_up", {})
    returned = rf"event {event.id} was returned by the broker.*'user.signed_up'"
    with pytest.raises(EventUnroutable, match=returned):
        publisher.publish(event)
    publisher.publish(Event.create("order.created", {}))  # the channel still works
    assert topology.count(1) == 1


def test_publish_raises_exchange_not_found_before_setup_and_succeeds_once_it_is_declared(
    amqp_url: str, channel: BlockingChannel, unique_name: str
) -> None:
    exchange, queue = f"hookline.test.{unique_name}", f"hookline.test.{unique_name}.events"
    with Publisher(ProducerSettings(amqp_url=amqp_url, exchange=exchange)) as publisher:
        with pytest.raises(ExchangeNotFound) as caught:
            publisher.publish(Event.create("order.created", {}))
        message = str(caught.value)
        assert f"exchange {exchange!r} does not exist" in message
        assert "hookline setup" in message
        assert "guest:***@" in message
        with pytest.raises(ExchangeNotFound):
            publisher.publish(Event.create("order.created", {}))  # the channel was reopened: same answer
        channel.exchange_declare(exchange, "topic")
        channel.queue_declare(queue)
        channel.queue_bind(queue, exchange, "#")
        try:
            publisher.publish(Event.create("order.created", {}))
            assert channel.queue_declare(queue, passive=True).method.message_count == 1
        finally:
            channel.queue_delete(queue)
            channel.exchange_delete(exchange)


def test_publish_raises_broker_unavailable_within_seconds_without_showing_the_password() -> None:
    settings = ProducerSettings(amqp_url="amqp://guest:s3cret-pw@127.0.0.1:1/%2F")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        Publisher(settings).publish(Event.create("order.created", {}))
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        "cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:1/%2F: Connection refused"
    )
    assert "s3cret-pw" not in repr(caught.value.__cause__)


@pytest.fixture
def full_queue(topology: Topology, unique_name: str) -> Iterator[str]:
    """A queue bound to `full.#` that holds one message and refuses (nacks) every later one."""
    full = f"hookline.test.{unique_name}.full"
    topology.channel.queue_declare(full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    topology.channel.queue_bind(full, topology.exchange, "full.#")
    yield full
    topology.channel.queue_delete(full)


def test_publish_raises_event_nacked_when_the_queue_refuses_the_event(
    amqp_url: str, topology: Topology, full_queue: str
) -> None:
    with Publisher(ProducerSettings(amqp_url=amqp_url, exchange=topology.exchange)) as publisher:
        publisher.publish(Event.create("full.first", {}))
        second = Event.create("full.second", {})
        with pytest.raises(EventNacked, match=f"the broker refused event {second.id}"):
            publisher.publish(second)


def test_after_a_nack_the_publisher_goes_on_on_a_new_channel_of_its_connection(
    amqp_url: str,
    topology: Topology,
    full_queue: str,
    connections: list[Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # RabbitMQ 3.10 can leave a channel nacking every publish to a quorum queue that changed leader
    # (tests/integration/test_cluster.py): a nack retires the channel, whatever the cause.
    channels: list[int] = []
    opening = publisher_module._CoalescingConnection.channel
    monkeypatch.setattr(
        publisher_module._CoalescingConnection,
        "channel",
        lambda self, *args, **kwargs: channels.append(1) or opening(self, *args, **kwargs),
    )
    with Publisher(ProducerSettings(amqp_url=amqp_url, exchange=topology.exchange)) as publisher:
        publisher.publish(Event.create("full.first", {}))
        with pytest.raises(EventNacked):
            publisher.publish(Event.create("full.second", {}))
        publisher.publish(Event.create("order.created", {}))
    assert topology.count(1) == 1
    assert (len(connections), len(channels)) == (1, 2)


def test_publish_many_confirms_5000_events_and_the_queue_holds_all_of_them(
    publisher: Publisher, topology: Topology
) -> None:
    events = [Event.create("order.created", {"n": n}) for n in range(5000)]
    progress: list[int] = []
    assert publisher.publish_many(events, on_confirmed=progress.append) == []
    assert sum(progress) == 5000
    assert topology.count(5000) == 5000


def test_publish_many_returns_each_failed_event_with_its_error_in_input_order(
    publisher: Publisher, topology: Topology
) -> None:
    events = [
        Event.create(event_type, {})
        for event_type in ["order.created", "user.created", "order.paid", "user.deleted", "order.shipped"]
    ]
    failures = publisher.publish_many(events)
    assert [(event, type(error)) for event, error in failures] == [
        (events[1], EventUnroutable),
        (events[3], EventUnroutable),
    ]
    assert topology.count(3) == 3


def test_publish_many_raises_invalid_event_before_sending_any(
    publisher: Publisher, topology: Topology
) -> None:
    too_large = Event.create("order.created", {"blob": "x" * (publisher.settings.max_event_bytes + 1)})
    with pytest.raises(EventTooLarge):
        publisher.publish_many([Event.create("order.created", {}), too_large])
    assert topology.count(1, timeout=0.5) == 0


def test_one_connection_is_shared_by_every_publish_from_every_thread(
    publisher: Publisher, topology: Topology, connections: list[Any]
) -> None:
    for n in range(50):
        publisher.publish(Event.create("order.created", {"n": n}))
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = list(
            pool.map(lambda n: publisher.publish_async(Event.create("order.created", {"n": n})), range(200))
        )
    assert all(future.result(timeout=10) is None for future in futures)
    assert publisher.publish_many([Event.create("order.created", {}) for _ in range(100)]) == []
    assert len(connections) == 1
    assert topology.count(350) == 350


def test_events_unconfirmed_when_the_connection_is_lost_fail_and_the_next_publish_reconnects(
    publisher: Publisher, topology: Topology, connections: list[Any]
) -> None:
    publisher.publish(Event.create("order.created", {}))
    connection = connections[0]
    handed_over = threading.Event()

    def cut_the_connection() -> None:
        # Runs on the IO thread, which therefore reads no confirm before the socket is gone.
        handed_over.wait(10)
        connection._transport._sock.shutdown(socket.SHUT_RDWR)

    connection.ioloop.add_callback_threadsafe(cut_the_connection)
    futures = [publisher.publish_async(Event.create("order.created", {"n": n})) for n in range(20)]
    handed_over.set()
    errors = [future.exception(timeout=10) for future in futures]
    assert all(isinstance(error, BrokerUnavailable) for error in errors), errors
    assert "guest:***@" in str(errors[0])
    publisher.publish(Event.create("order.created", {}))
    assert len(connections) == 2


def test_publish_raises_confirm_timeout_when_no_confirm_arrives(
    amqp_url: str, topology: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The broker's confirms reach the publisher but are dropped, as if they never came.
    monkeypatch.setattr(publisher_module._Link, "_on_confirm", lambda _self, _channel, _frame: None)
    settings = ProducerSettings(amqp_url=amqp_url, exchange=topology.exchange)
    with Publisher(settings, confirm_timeout=0.5) as publisher:
        started = time.monotonic()
        with pytest.raises(ConfirmTimeout, match="no confirm for event"):
            publisher.publish(Event.create("order.created", {}))
        assert time.monotonic() - started < 2


def test_close_waits_for_events_handed_over_without_waiting(publisher: Publisher, topology: Topology) -> None:
    futures = [publisher.publish_async(Event.create("order.created", {"n": n})) for n in range(500)]
    publisher.close()
    assert all(future.done() and future.exception() is None for future in futures)
    assert topology.count(500) == 500
    assert not [thread for thread in threading.enumerate() if thread.name == "hookline-publisher-io"]


def test_publish_many_pins_each_return_on_the_event_that_was_returned_while_pipelining(
    publisher: Publisher, topology: Topology
) -> None:
    events = [Event.create("user.created" if n % 7 == 0 else "order.created", {"n": n}) for n in range(2000)]
    events += events[:50]  # the same events again: same ids in flight twice
    failures = publisher.publish_many(events)
    unroutable = [event for event in events if event.type == "user.created"]
    assert [event for event, _ in failures] == unroutable
    assert all(isinstance(error, EventUnroutable) for _, error in failures)
    assert topology.count(len(events) - len(unroutable)) == len(events) - len(unroutable)
