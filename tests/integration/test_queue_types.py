"""Quorum queues by default, classic behind a setting, one clear line when the broker holds the other type.

Against the real RabbitMQ on 127.0.0.1 (one node: quorum queues work there too,
unreplicated). What a lost node does is tests/integration/test_cluster.py's.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pika
import pytest
from support.processes import Worker, messages, run_hookline, run_json, wait_until
from support.receiver import Receiver

from producer.errors import BrokerUnavailable
from producer.event import Event
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from workers.broker.topology import DELIVERY_LIMIT, Topology

pytestmark = pytest.mark.integration

MOVING = "docs/deployment.md#moving-between-queue-types"


def topology_of(env: dict[str, str]) -> Topology:
    return Topology(exchange=env["HOOKLINE_EXCHANGE"], prefix=env["HOOKLINE_QUEUE_PREFIX"])


def publish_raw(channel: pika.adapters.blocking_connection.BlockingChannel, exchange: str) -> str:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = {"id": event_id, "type": "order.created", "timestamp": "2026-01-01T00:00:00Z", "data": {}}
    channel.basic_publish(exchange, "order.created", json.dumps(body).encode(), mandatory=True)
    return event_id


def take_without_ack(amqp_url: str, queue: str) -> dict[str, Any] | None:
    """A message's headers, then the connection closes without an ack: as a worker killed mid-message."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        method, properties, _body = connection.channel().basic_get(queue)
        return None if method is None or properties is None else dict(properties.headers or {})
    finally:
        connection.close()


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
def test_setup_says_which_type_of_queues_it_declared(hookline_env: dict[str, str], queue_type: str) -> None:
    env = {**hookline_env, "HOOKLINE_QUEUE_TYPE": queue_type} if queue_type == "classic" else hookline_env
    assert run_json(env, "setup")["queue_type"] == queue_type
    assert f"({queue_type})" in run_hookline(env, "setup").stdout


def test_a_message_that_keeps_killing_its_worker_is_parked_in_xq_with_its_reason(
    hookline_env: dict[str, str], amqp_connection: pika.BlockingConnection
) -> None:
    run_hookline(hookline_env, "setup")
    topology, url = topology_of(hookline_env), hookline_env["HOOKLINE_AMQP_URL"]
    channel = amqp_connection.channel()
    channel.confirm_delivery()
    publish_raw(channel, topology.exchange)
    deliveries = 0
    while take_without_ack(url, topology.events_queue) is not None:
        deliveries += 1
        assert deliveries <= DELIVERY_LIMIT + 1, "redelivered past the limit"
    assert deliveries == DELIVERY_LIMIT + 1  # the first delivery and DELIVERY_LIMIT redeliveries
    crashed = topology.crashed_queue(topology.events_queue)
    wait_until(lambda: messages(url, crashed) == 1, timeout=10, what="the parked message")
    _method, properties, _body = channel.basic_get(crashed, auto_ack=True)
    assert properties is not None
    assert (properties.headers or {})["x-first-death-reason"] == "delivery_limit"


def test_classic_queues_are_kept_behind_the_setting_and_deliver_as_before(
    hookline_env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env = {**hookline_env, "HOOKLINE_QUEUE_TYPE": "classic"}
    run_hookline(env, "setup")
    topology = topology_of(env)
    run_json(env, "subscriptions", "add", "--url", f"{hook_receiver.url}/classic", "--event", "#")
    worker = Worker(env, tmp_path / "worker.log")
    workers.append(worker.start([topology.events_queue, topology.retries_queue]))
    settings = ProducerSettings(amqp_url=env["HOOKLINE_AMQP_URL"], exchange=topology.exchange)
    with Publisher(settings) as publisher:
        publisher.publish(Event.create("order.created", {"n": 1}))
    wait_until(lambda: len(hook_receiver.on("/classic")) == 1, timeout=30, what="the webhook")


def test_a_classic_queue_has_no_delivery_limit(
    hookline_env: dict[str, str], amqp_connection: pika.BlockingConnection
) -> None:
    env = {**hookline_env, "HOOKLINE_QUEUE_TYPE": "classic"}
    run_hookline(env, "setup")
    topology = topology_of(env)
    channel = amqp_connection.channel()
    channel.confirm_delivery()
    publish_raw(channel, topology.exchange)
    for _ in range(DELIVERY_LIMIT + 2):
        assert take_without_ack(env["HOOKLINE_AMQP_URL"], topology.events_queue) is not None


@pytest.mark.parametrize(("declared", "configured"), [("classic", "quorum"), ("quorum", "classic")])
@pytest.mark.parametrize("command", ["setup", "worker"])
def test_queues_of_the_other_type_stop_setup_and_worker_with_one_line_naming_the_queue_and_the_way_out(
    hookline_env: dict[str, str], declared: str, configured: str, command: str
) -> None:
    run_hookline({**hookline_env, "HOOKLINE_QUEUE_TYPE": declared}, "setup")
    result = run_hookline({**hookline_env, "HOOKLINE_QUEUE_TYPE": configured}, command, check=False)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line
    queue = topology_of(hookline_env).events_queue
    assert f"queue {queue} on amqp://guest:***@127.0.0.1:5672/%2F is a {declared} queue" in line
    assert f"HOOKLINE_QUEUE_TYPE={configured}" in line
    assert MOVING in line
    assert f"or set HOOKLINE_QUEUE_TYPE={declared}" in line


def test_setup_and_the_producer_go_past_a_node_that_does_not_answer(hookline_env: dict[str, str]) -> None:
    nodes = f"amqp://guest:hunter2@127.0.0.1:1/%2F,{hookline_env['HOOKLINE_AMQP_URL']}"
    env = {**hookline_env, "HOOKLINE_AMQP_URL": nodes}
    run_hookline(env, "setup")
    settings = ProducerSettings(amqp_url=nodes, exchange=env["HOOKLINE_EXCHANGE"])
    with Publisher(settings) as publisher:
        publisher.publish(Event.create("order.created", {"n": 1}))
    assert messages(nodes, topology_of(env).events_queue) == 1


def test_when_no_node_answers_each_is_named_without_its_password(hookline_env: dict[str, str]) -> None:
    nodes = "amqp://guest:hunter2@127.0.0.1:1/%2F,amqp://guest:hunter3@127.0.0.1:2/%2F"
    result = run_hookline({**hookline_env, "HOOKLINE_AMQP_URL": nodes}, "setup", check=False)
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr
    settings = ProducerSettings(amqp_url=nodes, exchange="hookline.nowhere")
    with Publisher(settings) as publisher, pytest.raises(BrokerUnavailable) as caught:
        publisher.publish(Event.create("order.created", {"n": 1}))
    message = str(caught.value)
    assert "none of the 2 RabbitMQ nodes answered" in message
    assert "127.0.0.1:1" in message
    assert "127.0.0.1:2" in message
    for secret in ("hunter2", "hunter3"):
        assert secret not in result.stderr + message
