"""The dramatiq broker on RabbitMQ: confirms, raw events off the events queue, declaring the topology.

Publishers follow a plain JSON contract and know nothing of dramatiq, so the
events queue holds bare events, not dramatiq messages. Rather than teach the
global decoder to guess (a publisher could then forge a delivery message), the
consumer of that one queue wraps every body, whatever it holds, into a
``fan_out`` message; the actor validates it and parks what is not an event.
Every other queue holds dramatiq's own messages and is consumed unchanged.

This subclasses dramatiq's private RabbitMQ consumer; pyproject pins dramatiq
to 2.x for that reason. Dramatiq declares its own ``.DQ``/``.XQ`` companions
with fixed arguments; the actor queues are declared through the dramatiq
broker so the arguments always match (a mismatch is a PRECONDITION_FAILED
channel error).
"""

from __future__ import annotations

from typing import Any

import pika
import pika.exceptions
from dramatiq import Message
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import q_name, xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

from producer.settings import redacted_url
from workers.broker import heldacks
from workers.broker.topology import ALL_EVENTS, FAN_OUT_ACTOR, RawEvent, Topology
from workers.errors import TopologyError, describe_cause
from workers.observability.logs import get_logger
from workers.settings import Settings

log = get_logger(component="consumer")
HELD_ACK_HEADROOM = 48


class HooklineBroker(RabbitmqBroker):
    """A RabbitMQ broker whose events queue yields raw events to the fan-out actor."""

    def __init__(self, *, topology: Topology, url: str, middleware: list[Middleware]) -> None:
        # Confirms make enqueue wait until RabbitMQ stored the delivery, so an
        # event is acked only after all its deliveries are safe.
        super().__init__(url=url, middleware=middleware, confirm_delivery=True)
        self.topology = topology

    def publish_confirmed(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish straight to ``queue`` and return once RabbitMQ stored it (confirm + mandatory)."""
        try:
            self.channel.basic_publish("", queue, body, properties=properties, mandatory=True)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError):
            del self.connection  # never reuse a broken channel on this thread
            raise

    @property
    def consumer_class(self) -> type[_HeldAckConsumer]:
        return _HeldAckConsumer

    def _declare_xq_queue(self, queue_name: str) -> Any:
        # dramatiq gives .XQ queues a 7-day TTL; hookline expires nothing an
        # operator did not ask it to (.XQ receives only crashed messages).
        return self.channel.queue_declare(queue=xq_name(queue_name), durable=True)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        # dramatiq prefetches twice its threads. A message whose ack is held for a delay batch
        # (workers/heldacks.py) still counts against that, and with half the events bound for a
        # hanging endpoint the held ones left threads without work: room for them on top.
        prefetch += HELD_ACK_HEADROOM
        if queue_name != self.topology.events_queue:
            return super().consume(queue_name, prefetch, timeout)
        self.declare_queue(queue_name, ensure=True)
        return _EventsConsumer(self, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call] # private dramatiq class, unannotated


class _HeldAckConsumer(_RabbitmqConsumer):
    """Acks a message only once what its actor handed on is stored (see workers/heldacks.py)."""

    def ack(self, message: MessageProxy) -> None:
        held = heldacks.take()
        if heldacks.pending(held):
            heldacks.when_settled(held, lambda error: self._settle(message, error))
        else:
            super().ack(message)  # type: ignore[no-untyped-call] # private dramatiq class, unannotated

    def nack(self, message: MessageProxy) -> None:
        heldacks.take()  # rejected anyway: RabbitMQ keeps it in .XQ, whatever it handed on
        super().nack(message)  # type: ignore[no-untyped-call] # as above

    def _settle(self, message: MessageProxy, error: BaseException | None) -> None:
        # Runs on the thread that settled the last future; the consumer's connection is another
        # thread's, and dramatiq's ack and nack only schedule the frame on it.
        try:
            if error is None:
                super().ack(message)  # type: ignore[no-untyped-call] # as above
                return
            log.error("message_rejected", message_id=message.message_id, error=str(error))
            super().nack(message)  # type: ignore[no-untyped-call] # as above
            # As dramatiq's worker does after its own nacks: middleware counts the rejection.
            self.broker.emit_after("nack", message)
        except ConnectionClosed as exc:
            # RabbitMQ redelivers the message: what it handed on may be handed on twice, never lost.
            log.warning("held_ack_lost", message_id=message.message_id, error=str(exc))


class _EventsConsumer(_HeldAckConsumer):
    """Consumes the events queue, wrapping each body into a fan_out message."""

    def __next__(self) -> MessageProxy | None:
        try:
            method, _properties, body = next(self.iterator)
        except (AssertionError, pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as e:
            # Same recovery as dramatiq's own consumer: a vanished queue is redeclared on restart.
            if getattr(e, "reply_code", None) == 404:
                self.broker.queues_pending.add(q_name(self.queue_name))
            raise ConnectionClosed(e) from None  # type: ignore[no-untyped-call] # unannotated in dramatiq
        if method is None:
            return None
        raw = RawEvent(body=body, routing_key=method.routing_key, redelivered=method.redelivered)
        message: Message[Any] = Message(
            queue_name=self.queue_name, actor_name=FAN_OUT_ACTOR, args=(raw,), kwargs={}, options={}
        )
        self.known_tags.add(method.delivery_tag)
        return _RabbitmqMessage(method.redelivered, method.delivery_tag, message)  # type: ignore[no-untyped-call] # private, unannotated


def declare(broker: HooklineBroker) -> None:
    """Declare exchange, queues and the binding; safe to run any number of times."""
    topology = broker.topology
    for queue in topology.actor_queues:
        broker.declare_queue(queue, ensure=True)
    channel = broker.channel
    channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.invalid_events_queue, durable=True)
    channel.queue_declare(topology.dead_letters_queue, durable=True)
    for seconds, queue in topology.delay_queues.items():
        arguments = {
            "x-message-ttl": seconds * 1000,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": topology.retries_queue,
        }
        channel.queue_declare(queue, durable=True, arguments=arguments)
    channel.queue_bind(topology.events_queue, topology.exchange, routing_key=ALL_EVENTS)


def ensure(settings: Settings) -> Topology:
    """Connect, declare everything, disconnect; TopologyError says why if it cannot."""
    topology = Topology.from_settings(settings)
    broker = HooklineBroker(topology=topology, url=settings.amqp_url, middleware=[])
    try:
        declare(broker)
    except (ConnectionClosed, pika.exceptions.AMQPError) as exc:
        reason = describe_cause(exc)
        where = redacted_url(settings.amqp_url)
        raise TopologyError(f"cannot declare exchange and queues on {where}: {reason}") from exc
    finally:
        broker.close()
    return topology
