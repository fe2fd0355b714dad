"""What the bench asks of RabbitMQ directly: is it there, queue counts, and its own queues' removal."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from producer.settings import redacted_url
from workers.broker.nodes import Nodes
from workers.broker.topology import Topology
from workers.errors import BenchError, describe_cause
from workers.settings import QueueType

CONNECT_TIMEOUT = 5.0


@contextmanager
def channel(amqp_url: str) -> Iterator[BlockingChannel]:
    """A channel on a fresh connection, or :class:`BenchError` naming the broker (never its password)."""
    try:
        connection = Nodes(amqp_url, timeout=CONNECT_TIMEOUT, blocked_timeout=30.0).connect()
    except (pika.exceptions.AMQPError, OSError, ValueError) as exc:
        reason = describe_cause(exc).splitlines()[0]
        raise BenchError(f"RabbitMQ is not reachable at {redacted_url(amqp_url)} ({reason})") from None
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def check_reachable(amqp_url: str) -> None:
    with channel(amqp_url):
        pass


def queue_counts(amqp_url: str, queue: str) -> tuple[int, int]:
    """``(messages, consumers)`` of ``queue``; ``(0, 0)`` if it does not exist."""
    with channel(amqp_url) as ch:
        try:
            frame = ch.queue_declare(queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker:
            return 0, 0
    return frame.method.message_count, frame.method.consumer_count


def declare_baseline(amqp_url: str, exchange: str, queue: str, queue_type: QueueType) -> None:
    """The baseline's own exchange and durable queue, every event bound to it (as hookline's events queue).

    The queue has the type of hookline's events queue, so the comparison measures the code, not
    the queue type.
    """
    with channel(amqp_url) as ch:
        ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        ch.queue_declare(queue, durable=True, arguments={"x-queue-type": queue_type})
        ch.queue_bind(queue, exchange, routing_key="#")


def delete_baseline(amqp_url: str, exchange: str, queue: str) -> None:
    with channel(amqp_url) as ch:
        ch.queue_delete(queue)
        ch.exchange_delete(exchange)


def delete_topology(amqp_url: str, exchange: str, prefix: str) -> None:
    """Every queue hookline may have declared under ``prefix``, and its exchanges."""
    topology = Topology(exchange=exchange, prefix=prefix)
    with channel(amqp_url) as ch:
        for queue in topology.all_queues():
            ch.queue_delete(queue)
        ch.exchange_delete(exchange)
        ch.exchange_delete(topology.subscription_changes_exchange)
