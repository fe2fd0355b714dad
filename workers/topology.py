"""The exchange, queues and bindings hookline runs on, and their declaration.

::

    publishers ──► exchange <HOOKLINE_EXCHANGE> (topic, durable)
                      │  binding "#": every event, whatever its type
                      ▼
                 <prefix>.events ──► fan_out actor ──► <prefix>.deliveries ──► deliver actor ──► HTTP POST
                      │ not a valid event                                          │ exception
                      ▼                                                            ▼
                 <prefix>.events.invalid                                   <prefix>.deliveries.XQ

The events queue binds ``#``, so once the topology exists every published event
is stored until a worker takes it, whether or not a worker has ever run.
Before it exists, the exchange is missing and a publish fails loudly
(``ExchangeNotFound``) instead of vanishing.

Dramatiq declares its own ``.DQ``/``.XQ`` companions with fixed arguments; we
declare the actor queues through the dramatiq broker so the arguments always
match (a mismatch is a PRECONDITION_FAILED channel error).
"""

from __future__ import annotations

from dataclasses import dataclass

import pika.exceptions
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.errors import ConnectionClosed

from producer.settings import redacted_url
from workers.errors import TopologyError
from workers.settings import Settings

ALL_EVENTS = "#"


@dataclass(frozen=True)
class Topology:
    exchange: str
    prefix: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(exchange=settings.exchange, prefix=settings.queue_prefix)

    @property
    def events_queue(self) -> str:
        return f"{self.prefix}.events"

    @property
    def deliveries_queue(self) -> str:
        return f"{self.prefix}.deliveries"

    @property
    def invalid_events_queue(self) -> str:
        return f"{self.prefix}.events.invalid"

    @property
    def actor_queues(self) -> tuple[str, ...]:
        return (self.events_queue, self.deliveries_queue)

    def all_queues(self) -> list[str]:
        """Every queue hookline may create, dramatiq's companions included."""
        names = [self.invalid_events_queue]
        for queue in self.actor_queues:
            names += [queue, f"{queue}.DQ", f"{queue}.XQ"]
        return names


def declare(broker: RabbitmqBroker, topology: Topology) -> None:
    """Declare exchange, queues and the binding; safe to run any number of times."""
    for queue in topology.actor_queues:
        broker.declare_queue(queue, ensure=True)
    channel = broker.channel
    channel.exchange_declare(topology.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(topology.invalid_events_queue, durable=True)
    channel.queue_bind(topology.events_queue, topology.exchange, routing_key=ALL_EVENTS)


def innermost(exc: BaseException) -> str:
    """The root reason of a pika/dramatiq connection error, which nest the real one in args or .exception."""
    while True:
        inner = getattr(exc, "exception", None) or (exc.args[0] if exc.args else None)
        if not isinstance(inner, BaseException):
            return str(exc) or type(exc).__name__
        exc = inner


def ensure(settings: Settings) -> Topology:
    """Connect, declare everything, disconnect; TopologyError says why if it cannot."""
    topology = Topology.from_settings(settings)
    broker = RabbitmqBroker(url=settings.amqp_url, middleware=[])
    try:
        declare(broker, topology)
    except (ConnectionClosed, pika.exceptions.AMQPError) as exc:
        where = redacted_url(settings.amqp_url)
        raise TopologyError(f"cannot declare exchange and queues on {where}: {innermost(exc)}") from exc
    finally:
        broker.close()
    return topology
