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

    every actor message's records (events, attempts, states) ──► <prefix>.log ──► hookline recorder
                                                                      │ not a log message
                                                                      ▼
                                                              <prefix>.log.invalid

A retry waits in RabbitMQ, not in a worker: the delivery is published to a
delay queue whose queue-wide TTL dead-letters it into the retries queue. One
TTL per queue keeps each queue in due order (a per-message TTL would block
behind its head). Delay queues hold 1 s, 2 s, 4 s, … 2^16 s; a wait is a chain
of hops through them (see :mod:`workers.pipeline.waiting`).

The events queue binds ``#``, so once the topology exists every published event
is stored until a worker takes it, whether or not a worker has ever run.
Before it exists, the exchange is missing and a publish fails loudly
(``ExchangeNotFound``) instead of vanishing.

Every queue is declared with the type ``HOOKLINE_QUEUE_TYPE`` names. Quorum
queues are replicated; they dead-letter at most once unless told otherwise,
and a message moved at most once is dropped if its move fails (a leader
change at the wrong moment), so every quorum queue that dead-letters does it
``at-least-once``, which RabbitMQ allows only with ``x-overflow:
reject-publish`` (no length limit is set, so nothing is ever refused for it).
The actor queues also get ``x-delivery-limit``: a message that kills its
worker process is redelivered, and would kill the next one, for ever; past the
limit RabbitMQ parks it in ``<queue>.XQ`` (``x-death`` reason
``delivery_limit``). The queues that only park (dead letters, invalid events,
``.XQ``) have no limit: a quorum queue with a limit and nowhere to dead-letter
would drop a message that ``hookline dlq`` had looked at too often. The log
queue is declared as they are: what the recorder has not written waits there
(it parks what it cannot read in ``<prefix>.log.invalid`` itself), and no
redelivery count may drop records while the log database is down. Classic
queues take the arguments hookline has always given them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workers.settings import QueueType, Settings

ALL_EVENTS = "#"
# 1 s to about 18 h; longer waits take several hops through the longest queue.
DELAY_TIERS: tuple[int, ...] = tuple(1 << power for power in range(17))

# Redeliveries of one message before RabbitMQ parks it in .XQ (quorum queues only). Each
# consumer that goes away counts too (a rollout, a node lost), so it is generous; RabbitMQ 4
# chose the same default. Changing it changes the queues' arguments: see docs/deployment.md.
DELIVERY_LIMIT = 20

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
    queue_type: QueueType = "quorum"

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(exchange=settings.exchange, prefix=settings.queue_prefix, queue_type=settings.queue_type)

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

    @property
    def log_queue(self) -> str:
        """The delivery-log records workers publish, which ``hookline recorder`` writes to the database."""
        return f"{self.prefix}.log"

    @property
    def invalid_log_queue(self) -> str:
        """Messages of the log queue that are not log messages, parked by the recorder with their reason."""
        return f"{self.prefix}.log.invalid"

    @property
    def parking_queues(self) -> tuple[str, ...]:
        """The queues declared with :meth:`parking_queue_arguments`, but ``.XQ`` (which dramatiq declares)."""
        return (self.invalid_events_queue, self.dead_letters_queue, self.log_queue, self.invalid_log_queue)

    @property
    def subscription_changes_exchange(self) -> str:
        """A fanout exchange: each worker process hears on it that subscriptions changed."""
        return f"{self.prefix}.subscriptions.changed"

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

    def actor_queue_arguments(self, actor_queue: str) -> dict[str, Any]:
        """An actor queue's and its ``.DQ``'s: a rejected or much redelivered message goes to ``.XQ``."""
        return self._dead_lettering(self.crashed_queue(actor_queue), delivery_limit=DELIVERY_LIMIT)

    def delay_queue_arguments(self, seconds: int) -> dict[str, Any]:
        """A delay queue's: each message waits ``seconds``, then moves on to the retries queue."""
        return {"x-message-ttl": seconds * 1000, **self._dead_lettering(self.retries_queue)}

    def parking_queue_arguments(self) -> dict[str, Any]:
        """Of a queue that keeps what it is given: dead letters, invalid events, ``.XQ``, the log queues."""
        return {"x-queue-type": self.queue_type}

    def arguments(self, queue: str) -> dict[str, Any]:
        """The arguments ``queue`` (one of :meth:`all_queues`) is declared with; KeyError for another."""
        for actor_queue in self.actor_queues:
            if queue in (actor_queue, f"{actor_queue}.DQ"):
                return self.actor_queue_arguments(actor_queue)
        for seconds, delay_queue in self.delay_queues.items():
            if queue == delay_queue:
                return self.delay_queue_arguments(seconds)
        if queue not in self.all_queues():
            raise KeyError(queue)
        return self.parking_queue_arguments()

    def _dead_lettering(self, target: str, *, delivery_limit: int | None = None) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "x-queue-type": self.queue_type,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": target,
        }
        if self.queue_type == "quorum":
            arguments |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
            if delivery_limit is not None:
                arguments["x-delivery-limit"] = delivery_limit
        return arguments

    def all_queues(self) -> list[str]:
        """Every queue hookline may create, dramatiq's companions included."""
        names = [*self.parking_queues, *self.delay_queues.values()]
        for queue in self.actor_queues:
            names += [queue, f"{queue}.DQ", self.crashed_queue(queue)]
        return names
