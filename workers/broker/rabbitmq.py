"""The dramatiq broker on RabbitMQ: confirms, raw events off the events queue, declaring the topology.

Publishers follow a plain JSON contract and know nothing of dramatiq, so the
events queue holds bare events, not dramatiq messages. Rather than teach the
global decoder to guess (a publisher could then forge a delivery message), the
consumer of that one queue wraps every body, whatever it holds, into a
``fan_out`` message; the actor validates it and parks what is not an event.
Every other queue holds dramatiq's own messages and is consumed unchanged.

This subclasses dramatiq's private RabbitMQ consumer; pyproject pins dramatiq
to 2.x for that reason. Dramatiq declares each actor queue with its ``.DQ``
and ``.XQ`` companions whenever it consumes or publishes; the broker gives it
hookline's arguments for them (quorum or classic, see
:mod:`workers.broker.topology`), so every declaration of a queue matches. A
mismatch is a PRECONDITION_FAILED channel error, which :func:`ensure` turns
into one line naming the queue: that is what a broker holding queues of the
other type answers, since a queue's type cannot change in place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

import pika
import pika.exceptions
from dramatiq import Message
from dramatiq.broker import Consumer, MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker, _RabbitmqConsumer, _RabbitmqMessage
from dramatiq.common import q_name, xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware

from producer.errors import root_cause
from producer.settings import node_urls, redacted_url
from workers.broker import heldacks
from workers.broker.ackbook import AckBook
from workers.broker.nodes import Nodes, publish_confirmed
from workers.broker.topology import ALL_EVENTS, FAN_OUT_ACTOR, RawEvent, Topology
from workers.errors import TopologyError, describe_cause
from workers.observability.logs import get_logger
from workers.settings import QueueType, Settings

log = get_logger(component="consumer")
# Messages a process may hold unacked beyond dramatiq's prefetch, while their records or delays wait
# for a batch's confirm (a linger of 0.05 s plus the confirm): enough for about 2,500 messages/s per
# process before the prefetch, not the CPU, caps it. A worker killed meanwhile has them redelivered.
HELD_ACK_HEADROOM = 150
PRECONDITION_FAILED = 406
# RabbitMQ's reply to a declare whose arguments differ from the queue's, e.g. "inequivalent arg
# 'x-queue-type' for queue 'hookline.events' in vhost '/': received the value 'quorum' of type
# 'longstr' but current is none".
_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<argument>[^']+)' for queue '(?P<queue>[^']+)'.*?: (?P<detail>.*)"
)
MOVING = "docs/deployment.md#moving-between-queue-types"


class HooklineBroker(RabbitmqBroker):
    """A RabbitMQ broker whose events queue yields raw events to the fan-out actor."""

    def __init__(self, *, topology: Topology, url: str, middleware: list[Middleware]) -> None:
        self._nodes = Nodes(url)  # before dramatiq's __init__, which sets `parameters`
        # Confirms make enqueue wait until RabbitMQ stored the delivery, so an
        # event is acked only after all its deliveries are safe.
        super().__init__(url=node_urls(url), middleware=middleware, confirm_delivery=True)
        self.topology = topology

    @property
    def parameters(self) -> list[pika.URLParameters]:
        """What dramatiq connects with: every node, one further along for each new connection."""
        return self._nodes.parameters()

    @parameters.setter
    def parameters(self, _built_by_dramatiq: object) -> None:
        # dramatiq's __init__ stores the parameters it built from the URLs; _nodes has the same.
        return

    def publish_confirmed(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None:
        """Publish straight to ``queue`` and return once RabbitMQ stored it (confirm + mandatory).

        A publish that failed for a lost node, or a queue between leaders, is tried again on a
        new connection; once it has failed for good, this thread's connection is dropped too.
        """

        def publish() -> None:
            self.channel.basic_publish("", queue, body, properties=properties, mandatory=True)

        def reconnect() -> None:
            del self.connection  # never reuse a broken channel on this thread

        try:
            publish_confirmed(publish, reconnect=reconnect)
        except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError):
            reconnect()
            raise

    @property
    def consumer_class(self) -> type[_HeldAckConsumer]:
        return _HeldAckConsumer

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        # dramatiq declares an actor queue and its .DQ with these.
        return self.topology.actor_queue_arguments(queue_name)

    def _declare_xq_queue(self, queue_name: str) -> Any:
        # dramatiq gives .XQ queues a 7-day TTL; hookline expires nothing an operator
        # did not ask it to (.XQ receives crashed messages and those redelivered too often).
        arguments = self.topology.parking_queue_arguments()
        return self.channel.queue_declare(queue=xq_name(queue_name), durable=True, arguments=arguments)

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        # dramatiq prefetches twice its threads. A message whose ack is held for a delay batch
        # (workers/heldacks.py) still counts against that, and with half the events bound for a
        # hanging endpoint the held ones left threads without work: room for them on top.
        prefetch += HELD_ACK_HEADROOM
        if queue_name != self.topology.events_queue:
            return super().consume(queue_name, prefetch, timeout)
        self.declare_queue(queue_name, ensure=True)
        return _EventsConsumer(self, queue_name, prefetch, timeout)


class _HeldAckConsumer(_RabbitmqConsumer):
    """Acks a message only once what its actor handed on is stored (see workers/heldacks.py).

    Acks and rejections go through an :class:`~workers.broker.ackbook.AckBook`:
    the connection's thread sends what settled meanwhile in one go, not a frame
    scheduled per message as dramatiq's own consumer does.
    """

    def __init__(self, broker: HooklineBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # type: ignore[no-untyped-call] # private dramatiq class, unannotated
        self.book = AckBook(self.known_tags)

    def ack(self, message: MessageProxy) -> None:
        held = heldacks.take()
        if heldacks.pending(held):
            heldacks.when_settled(held, lambda error: self._settle(message, error))
        else:
            self._book(message, ack=True)

    def nack(self, message: MessageProxy) -> None:
        heldacks.take()  # rejected anyway: RabbitMQ keeps it in .XQ, whatever it handed on
        self._book(message, ack=False)

    def _settle(self, message: MessageProxy, error: BaseException | None) -> None:
        # Runs on the thread that settled the last future; the consumer's connection is another
        # thread's, and booking only schedules the frames on it.
        try:
            if error is None:
                self._book(message, ack=True)
                return
            log.error("message_rejected", message_id=message.message_id, error=str(error))
            self._book(message, ack=False)
            # As dramatiq's worker does after its own nacks: middleware counts the rejection.
            self.broker.emit_after("nack", message)
        except ConnectionClosed as exc:
            # RabbitMQ redelivers the message: what it handed on may be handed on twice, never lost.
            log.warning("held_ack_lost", message_id=message.message_id, error=str(exc))

    def _nack(self, tag: int) -> None:
        # dramatiq rejects a body it cannot decode this way, before the tag is known: book it too,
        # or a multiple ack sent before the rejection would ack it.
        self.known_tags.add(tag)
        self._send_when_due(self.book.settle(tag, ack=False))

    def _book(self, message: MessageProxy, *, ack: bool) -> None:
        try:
            schedule = self.book.settle(message._tag, ack=ack)
        except KeyError:
            # Delivered on a connection since closed: RabbitMQ redelivers it, as dramatiq's consumer warns.
            log.warning("settled_unknown_tag", message_id=message.message_id)
            return
        self._send_when_due(schedule)

    def _send_when_due(self, schedule: bool) -> None:
        if schedule:
            try:
                self.connection.add_callback_threadsafe(self._send_settled)
            except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError) as exc:
                raise ConnectionClosed(exc) from None  # type: ignore[no-untyped-call] # unannotated in dramatiq

    def _send_settled(self) -> None:
        # pika's BlockingChannel flushes its socket after every frame, a loop of polls each time;
        # its inner channel only queues the frame. All but the last go through the inner channel,
        # and the last through BlockingChannel, whose flush then sends them all in one write.
        frames = self.book.take().in_order()
        for position, (ack, tag, multiple) in enumerate(frames, start=1):
            channel = self.channel if position == len(frames) else self.channel._impl  # type: ignore[attr-defined] # see above; pinned in tests/unit/test_library_contracts.py
            if ack:
                channel.basic_ack(tag, multiple=multiple)
            else:
                channel.basic_nack(tag, requeue=False)


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
    for queue in topology.parking_queues:
        channel.queue_declare(queue, durable=True, arguments=topology.parking_queue_arguments())
    for seconds, queue in topology.delay_queues.items():
        channel.queue_declare(queue, durable=True, arguments=topology.delay_queue_arguments(seconds))
    channel.queue_bind(topology.events_queue, topology.exchange, routing_key=ALL_EVENTS)


def ensure(settings: Settings) -> Topology:
    """Connect, declare everything, disconnect; TopologyError says why if it cannot."""
    topology = Topology.from_settings(settings)
    broker = HooklineBroker(topology=topology, url=settings.amqp_url, middleware=[])
    try:
        declare(broker)
    except (ConnectionClosed, pika.exceptions.AMQPError) as exc:
        raise TopologyError(_why_not_declared(broker, exc, redacted_url(settings.amqp_url))) from exc
    finally:
        broker.close()
    return topology


def _why_not_declared(broker: HooklineBroker, error: BaseException, where: str) -> str:
    mismatch = Mismatch.parse(root_cause(error))
    if mismatch is None:
        return f"cannot declare exchange and queues on {where}: {describe_cause(error)}"
    return mismatch.describe(broker.topology.queue_type, _declared_type(broker, mismatch.queue), where)


def _declared_type(broker: HooklineBroker, queue: str) -> QueueType | None:
    """The type ``queue`` has if it is hookline's queue of the other type; None if it is not that either.

    Found by declaring it as the other type would: a declare whose arguments match changes nothing.
    RabbitMQ compares some arguments before the type, so its refusal alone cannot say.
    """
    other: QueueType = "classic" if broker.topology.queue_type == "quorum" else "quorum"
    del broker.channel  # the broker closed it with the refusal
    try:
        arguments = replace(broker.topology, queue_type=other).arguments(queue)
        broker.channel.queue_declare(queue, durable=True, arguments=arguments)
    except (KeyError, pika.exceptions.AMQPError):
        return None
    return other


@dataclass(frozen=True)
class Mismatch:
    """RabbitMQ's refusal to declare a queue with other arguments than it has (PRECONDITION_FAILED)."""

    queue: str
    argument: str
    detail: str  # RabbitMQ's words: "received none but current is the value 'quorum' of type 'longstr'"

    @classmethod
    def parse(cls, error: BaseException) -> Mismatch | None:
        if getattr(error, "reply_code", None) != PRECONDITION_FAILED:
            return None
        found = _INEQUIVALENT.search(str(getattr(error, "reply_text", "")))
        return None if found is None else cls(found["queue"], found["argument"], found["detail"])

    def describe(self, wanted: QueueType, existing: QueueType | None, where: str) -> str:
        """One line: which queue, what differs, and how to move on."""
        if existing is not None and existing != wanted:
            return (
                f"queue {self.queue} on {where} is a {existing} queue but HOOKLINE_QUEUE_TYPE={wanted}: "
                f"a queue's type cannot change in place; move to new queues ({MOVING}) "
                f"or set HOOKLINE_QUEUE_TYPE={existing}"
            )
        return (
            f"queue {self.queue} on {where} has another {self.argument} than hookline declares with "
            f"HOOKLINE_QUEUE_TYPE={wanted} ({self.detail}); a queue's arguments cannot change in place: "
            f"see {MOVING}"
        )
