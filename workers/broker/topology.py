"""The names hookline runs on in RabbitMQ: exchange, queues, actors, and a raw event.

Pure names, no connection: anything that needs a queue name imports this
module without loading pika or dramatiq. :mod:`workers.broker.rabbitmq`
declares what is named here.

::

    publishers ──► exchange <HOOKLINE_EXCHANGE> (topic, durable)
                      │  binding "#": every event, whatever its type
                      ▼
                 <prefix>.events ──► fan_out: first attempt of each delivery ──► HTTP POST
                      │                          │ failed, or endpoint busy: due later
                      │ not a valid event        ▼
                      ▼                     <prefix>.delay.<2^k>s (TTL, no consumer; a chain of hops)
             <prefix>.events.invalid             │ dead-lettered when the TTL runs out
                                                 ▼
                                          <prefix>.retries ──► retry: next attempt ──► HTTP POST
                                                                 │ gave up (exhausted, permanent,
                                                                 │ too old, subscription disabled)
                                                                 ▼
                                                      <prefix>.deliveries.dead

A retry waits in RabbitMQ, not in a worker: the delivery is published to a
delay queue whose queue-wide TTL dead-letters it into the retries queue. One
TTL per queue keeps each queue in due order (a per-message TTL would block
behind its head). Delay queues hold 1 s, 2 s, 4 s, … 2^16 s; a wait is a chain
of hops through them (see :mod:`workers.pipeline.waiting`).

The events queue binds ``#``, so once the topology exists every published event
is stored until a worker takes it, whether or not a worker has ever run.
Before it exists, the exchange is missing and a publish fails loudly
(``ExchangeNotFound``) instead of vanishing.
"""

from __future__ import annotations

from dataclasses import dataclass

from workers.settings import Settings

ALL_EVENTS = "#"
# 1 s to about 18 h; longer waits take several hops through the longest queue.
DELAY_TIERS: tuple[int, ...] = tuple(1 << power for power in range(17))

FAN_OUT_ACTOR = "fan_out"
# Same work as a first attempt, on its own queue: retries never hold up fresh events.
RETRY_ACTOR = "retry"


@dataclass(frozen=True, slots=True)
class RawEvent:
    """A message as it came off the events queue, before validation."""

    body: bytes
    routing_key: str
    redelivered: bool

    def __repr__(self) -> str:
        # dramatiq logs messages with repr(args); keep bodies out of log lines.
        return f"RawEvent(routing_key={self.routing_key!r}, bytes={len(self.body)})"


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
        return (self.events_queue, self.retries_queue)

    def crashed_queue(self, actor_queue: str) -> str:
        """Where RabbitMQ keeps a message whose actor crashed (dramatiq's ``.XQ`` companion)."""
        return f"{actor_queue}.XQ"

    def all_queues(self) -> list[str]:
        """Every queue hookline may create, dramatiq's companions included."""
        names = [self.invalid_events_queue, self.dead_letters_queue, *self.delay_queues.values()]
        for queue in self.actor_queues:
            names += [queue, f"{queue}.DQ", self.crashed_queue(queue)]
        return names
