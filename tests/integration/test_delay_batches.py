"""Deliveries that must wait are stored in the delay queues many to a message, and none is lost."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pika
import pytest
from dramatiq import Message
from dramatiq.common import xq_name
from standardwebhooks import Webhook
from support.processes import Worker, messages, run_hookline, run_json, wait_until
from support.publishing import publish
from support.receiver import Receiver

from producer.event import Event
from workers.broker.delaybatch import DelayBatcher, connector
from workers.broker.topology import RETRY_ACTOR, Topology
from workers.errors import DelayNotStored
from workers.pipeline.delivery import Delivery, webhook_payload

pytestmark = pytest.mark.integration

Connect = Callable[[], pika.BlockingConnection]


@pytest.fixture
def queue(amqp_connection: pika.BlockingConnection, unique_name: str) -> Iterator[str]:
    """A durable queue of this test's own, standing in for a delay queue."""
    name = f"{unique_name}.delay"
    channel = amqp_connection.channel()
    channel.queue_declare(name, durable=True)
    yield name
    channel.queue_delete(name)


@pytest.fixture
def connect(amqp_url: str) -> Iterator[Connect]:
    """The batcher's connector; the connections it opened are closed after the test."""
    opened: list[pika.BlockingConnection] = []

    def recording() -> pika.BlockingConnection:
        opened.append(connector(amqp_url)())
        return opened[-1]

    yield recording
    for connection in opened:
        if connection.is_open:
            connection.close()


def batcher(connect: Connect, **options: Any) -> DelayBatcher:
    return DelayBatcher(connect, "hookline.test.retries", **options)


def delivery(n: int) -> dict[str, Any]:
    event = Event.create("order.created", {"n": n})
    return Delivery.for_event(event, "sub_test", webhook_payload(event)).to_message()


def stored(amqp_url: str, queue: str) -> list[dict[str, Any]]:
    """Every message in ``queue`` (taken off it), decoded."""
    return [json.loads(body) for body in raw_bodies(amqp_url, queue)]


def test_deliveries_handed_over_together_arrive_as_one_message_holding_all_of_them_in_order(
    connect: Connect, queue: str, amqp_url: str
) -> None:
    batches = batcher(connect, linger=0.2)
    sent = [delivery(n) for n in range(3)]
    futures = [batches.send(queue, each) for each in sent]
    for future in futures:
        assert future.result(timeout=10) is None
    [message] = stored(amqp_url, queue)
    assert (message["actor_name"], message["queue_name"]) == (RETRY_ACTOR, "hookline.test.retries")
    assert message["kwargs"] == {"deliveries": sent}


def test_more_deliveries_than_max_deliveries_are_split_into_messages_within_the_limit_none_lost(
    connect: Connect, queue: str, amqp_url: str
) -> None:
    batches = batcher(connect, linger=0.2, max_deliveries=3)
    sent = [delivery(n) for n in range(10)]
    for future in [batches.send(queue, each) for each in sent]:
        future.result(timeout=10)
    parts = [message["kwargs"]["deliveries"] for message in stored(amqp_url, queue)]
    assert len(parts) >= 4
    assert all(len(part) <= 3 for part in parts)
    assert [each for part in parts for each in part] == sent


def test_a_delivery_for_a_queue_that_does_not_exist_fails_and_the_batcher_still_stores_later_ones(
    connect: Connect, queue: str, amqp_url: str, unique_name: str
) -> None:
    batches = batcher(connect, linger=0.05)
    lost = batches.send(f"{unique_name}.missing", delivery(0))
    assert isinstance(lost.exception(timeout=10), DelayNotStored)
    later = delivery(1)
    assert batches.send(queue, later).result(timeout=10) is None
    assert [message["kwargs"]["deliveries"] for message in stored(amqp_url, queue)] == [[later]]


def test_drain_returns_true_only_once_everything_handed_over_is_stored(
    connect: Connect, queue: str, amqp_url: str
) -> None:
    def slow() -> pika.BlockingConnection:
        time.sleep(1.0)
        return connect()

    batches = batcher(slow, linger=60)  # only drain sends before a minute is up
    futures = [batches.send(queue, delivery(n)) for n in range(5)]
    assert batches.drain(0.2) is False  # still connecting
    assert messages(amqp_url, queue) == 0
    assert batches.drain(10) is True
    assert messages(amqp_url, queue) == 1
    assert all(future.done() and future.exception() is None for future in futures)


def test_a_connection_dropped_while_the_batcher_was_idle_does_not_fail_the_next_batch(
    amqp_url: str, queue: str
) -> None:
    # A one-second heartbeat that nobody answers for three: RabbitMQ drops the connection, and pika
    # only notices when the next batch is published on it.
    url = f"{amqp_url}{'&' if '?' in amqp_url else '?'}heartbeat=1"
    opened: list[pika.BlockingConnection] = []
    batches = batcher(lambda: opened.append(connector(url)()) or opened[-1], linger=0.01)
    first, later = delivery(0), delivery(1)
    assert batches.send(queue, first).result(timeout=10) is None
    time.sleep(4)
    assert batches.send(queue, later).result(timeout=10) is None
    assert [message["kwargs"]["deliveries"] for message in stored(amqp_url, queue)] == [[first], [later]]
    assert len(opened) == 2  # it opened a new connection, rather than failing the deliveries
    for connection in opened:
        if connection.is_open:
            connection.close()


@pytest.fixture
def env(hookline_env: dict[str, str]) -> dict[str, str]:
    hookline_env.update({"HOOKLINE_RETRY_SCHEDULE": "5s", "HOOKLINE_RETRY_JITTER": "0"})
    hookline_env["HOOKLINE_BREAKER_FAILURES"] = "1000"
    run_hookline(hookline_env, "setup")
    return hookline_env


def start(env: dict[str, str], workers: list[Worker], log: Path) -> Worker:
    worker = Worker(env, log)
    workers.append(worker)
    topology = topology_of(env)
    return worker.start([topology.events_queue, topology.retries_queue])


def topology_of(env: dict[str, str]) -> Topology:
    return Topology(exchange=env["HOOKLINE_EXCHANGE"], prefix=env["HOOKLINE_QUEUE_PREFIX"])


def test_a_batched_retry_message_with_two_deliveries_is_delivered_twice(
    env: dict[str, str],
    hook_receiver: Receiver,
    workers: list[Worker],
    tmp_path: Path,
    amqp_connection: pika.BlockingConnection,
) -> None:
    subscription = run_json(
        env, "subscriptions", "add", "--url", f"{hook_receiver.url}/batch", "--event", "#"
    )
    start(env, workers, tmp_path / "worker.log")
    events = [Event.create("order.created", {"n": n}) for n in range(2)]
    deliveries = [Delivery.for_event(event, subscription["id"], webhook_payload(event)) for event in events]
    retries = topology_of(env).retries_queue
    message: Message[Any] = Message(
        queue_name=retries,
        actor_name=RETRY_ACTOR,
        args=(),
        kwargs={"deliveries": [each.to_message() for each in deliveries]},
        options={},
    )
    channel = amqp_connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(
        "", retries, message.encode(), pika.BasicProperties(delivery_mode=2), mandatory=True
    )
    wait_until(lambda: len(hook_receiver.on("/batch")) >= 2, timeout=30, what="both webhooks")
    received = hook_receiver.on("/batch")
    verifier = Webhook(subscription["secret"])
    for request in received:
        verifier.verify(request.body, request.headers)
    assert sorted(request.headers["webhook-id"] for request in received) == sorted(e.id for e in events)
    assert {request.body.decode() for request in received} == {each.payload for each in deliveries}


def test_a_delivery_whose_retry_cannot_be_stored_leaves_its_event_in_the_events_dead_letter_queue(
    env: dict[str, str],
    hook_receiver: Receiver,
    workers: list[Worker],
    tmp_path: Path,
    amqp_connection: pika.BlockingConnection,
) -> None:
    hook_receiver.respond = lambda _: 503
    run_json(env, "subscriptions", "add", "--url", f"{hook_receiver.url}/down", "--event", "#")
    worker = start(env, workers, tmp_path / "worker.log")  # it declares the delay queues: delete them after
    topology = topology_of(env)
    channel = amqp_connection.channel()
    for delay_queue in topology.delay_queues.values():
        channel.queue_delete(delay_queue)
    [event_id] = publish(env)
    kept = xq_name(topology.events_queue)
    wait_until(
        lambda: messages(env["HOOKLINE_AMQP_URL"], kept) == 1, timeout=30, what=kept, log=worker.log_path
    )
    _method, _properties, body = channel.basic_get(kept)
    assert body is not None
    assert json.loads(body)["id"] == event_id
    assert len(hook_receiver.on("/down")) == 1
    wait_until(lambda: "message_rejected" in worker.log_path.read_text(), timeout=10, what="the log line")


def test_batches_are_cut_by_the_bytes_they_encode_to_not_by_characters(
    connect: Connect, queue: str, amqp_url: str
) -> None:
    # An emoji is one character and twelve bytes in the message (JSON escapes it as a pair).
    emoji = [{**delivery(n), "payload": "\U0001f600" * 2000} for n in range(10)]
    max_bytes = 64 * 1024  # the ten payloads are 20,000 characters, and 240,000 bytes encoded
    batches = batcher(connect, linger=0.2, max_bytes=max_bytes)
    for future in [batches.send(queue, each) for each in emoji]:
        future.result(timeout=10)
    bodies = raw_bodies(amqp_url, queue)
    assert len(bodies) >= 4
    envelope = 400  # the message around its deliveries: actor, queue, ids
    assert all(len(body) <= max_bytes + envelope for body in bodies), [len(body) for body in bodies]
    assert [each for body in bodies for each in json.loads(body)["kwargs"]["deliveries"]] == emoji


def raw_bodies(amqp_url: str, queue: str) -> list[bytes]:
    """Every message body in ``queue`` as stored (taken off it), each checked to be persistent."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    bodies = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        assert properties is not None
        assert body is not None
        assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
        bodies.append(body)
    connection.close()
    return bodies
