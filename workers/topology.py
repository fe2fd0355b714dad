"""The exchange, queues and bindings hookline runs on, and their declaration.

::

    publishers ──► exchange <HOOKLINE_EXCHANGE> (topic, durable)
                      │  binding "#": every event, whatever its type
                      ▼
                 <prefix>.events ──► fan_out ──► <prefix>.deliveries ──► deliver ──► HTTP POST
                      │ not a valid event                 ▲                 │ failed, retry due later
                      ▼                                   │                 ▼
                 <prefix>.events.invalid     <prefix>.retries ◄── <prefix>.delay.<2^k>s (TTL, no consumer)
                                                          │
                                          gave up (exhausted, permanent, too old)
                                                          ▼
                                             <prefix>.deliveries.dead

A retry waits in RabbitMQ, not in a worker: the delivery is published to a
delay queue whose queue-wide TTL dead-letters it into the retries queue. One
TTL per queue keeps each queue in due order (a per-message TTL would block
behind its head). Delay queues hold 1 s, 2 s, 4 s, … 2^16 s; a wait is a chain
of hops through them (see :mod:`workers.delays`).

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
from dramatiq.errors import ConnectionClosed

from producer.settings import redacted_url
from workers.broker import HooklineBroker
from workers.errors import TopologyError
from workers.settings import Settings

ALL_EVENTS = "#"
# 1 s to about 18 h; longer waits take several hops through the longest queue.
DELAY_TIERS: tuple[int, ...] = tuple(1 << power for power in range(17))


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
    def retries_queue(self) -> str:
        return f"{self.prefix}.retries"

    @property
    def invalid_events_queue(self) -> str:
        return f"{self.prefix}.events.invalid"

    @property
    def dead_letters_queue(self) -> str:
        return f"{self.prefix}.deliveries.dead"

    def delay_queue(self, seconds: int) -> str:
        return f"{self.prefix}.delay.{seconds}s"

    @property
    def delay_queues(self) -> dict[int, str]:
        return {seconds: self.delay_queue(seconds) for seconds in DELAY_TIERS}

    @property
    def actor_queues(self) -> tuple[str, ...]:
        return (self.events_queue, self.deliveries_queue, self.retries_queue)

    def all_queues(self) -> list[str]:
        """Every queue hookline may create, dramatiq's companions included."""
        names = [self.invalid_events_queue, self.dead_letters_queue, *self.delay_queues.values()]
        for queue in self.actor_queues:
            names += [queue, f"{queue}.DQ", f"{queue}.XQ"]
        return names


def declare(broker: HooklineBroker, topology: Topology) -> None:
    """Declare exchange, queues and the binding; safe to run any number of times."""
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
    broker = HooklineBroker(topology=topology, url=settings.amqp_url, middleware=[])
    try:
        declare(broker, topology)
    except (ConnectionClosed, pika.exceptions.AMQPError) as exc:
        where = redacted_url(settings.amqp_url)
        raise TopologyError(f"cannot declare exchange and queues on {where}: {innermost(exc)}") from exc
    finally:
        broker.close()
    return topology
