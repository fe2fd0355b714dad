"""Parking what cannot be delivered, so an operator can see it, replay it, or purge it.

Two queues, kept apart:

- ``<prefix>.events.invalid``: messages that are not valid events, byte for
  byte, with the reason in the ``x-hookline-reason`` header.
- ``<prefix>.deliveries.dead``: deliveries hookline gave up on, one JSON
  :class:`DeadLetter` each: the webhook, the subscription, how many attempts,
  when, and how the last one failed.

Every park waits for the broker's confirm (the broker's channels are in confirm
mode) before the original message is acked, so nothing is lost in between.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import pika

from workers.broker.topology import RawEvent, Topology
from workers.pipeline.delivery import Delivery, new_run
from workers.vocabulary import Cause

REASON_HEADER = "x-hookline-reason"
ROUTING_KEY_HEADER = "x-hookline-routing-key"
PARKED_AT_HEADER = "x-hookline-parked-at"
SUBSCRIPTION_HEADER = "x-hookline-subscription-id"
CAUSE_HEADER = "x-hookline-cause"
# The actor queue a crashed message was taken from, on the copy parked in its .XQ.
ORIGIN_QUEUE_HEADER = "x-hookline-queue"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: str
    subscription_id: str
    event_id: str
    event_type: str
    event_timestamp: str
    payload: str
    attempts: int
    first_attempt_at: str | None
    last_attempt_at: str | None
    last_status: int | None
    last_reason: str | None
    last_error: str | None
    cause: str  # a Cause when hookline parks it; as read back, whatever the message holds
    dead_lettered_at: str
    # The run the delivery was given up in (see workers/pipeline/delivery.py); letters parked
    # before runs existed read as the first.
    run: str = ""

    @classmethod
    def of(cls, delivery: Delivery, cause: Cause, now: float, *, attempts: int | None = None) -> DeadLetter:
        return cls(
            id=f"dl_{uuid.uuid4().hex}",
            subscription_id=delivery.subscription_id,
            event_id=delivery.event_id,
            event_type=delivery.event_type,
            event_timestamp=delivery.event_timestamp,
            payload=delivery.payload,
            attempts=delivery.attempt if attempts is None else attempts,
            first_attempt_at=_iso(delivery.first_attempt_at),
            last_attempt_at=_iso(delivery.last_attempt_at),
            last_status=delivery.last_status,
            last_reason=delivery.last_reason,
            last_error=delivery.last_error,
            cause=cause,
            dead_lettered_at=_iso(now) or "",
            run=delivery.run,
        )

    @classmethod
    def from_json(cls, body: bytes) -> DeadLetter:
        return cls(**json.loads(body))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def to_record(self) -> dict[str, Any]:
        return asdict(self)

    def replay(self, run: str | None = None) -> Delivery:
        """A fresh delivery of the same webhook (same ``webhook-id``), starting a new attempt cycle.

        It is a new run (``run``, or a fresh one): the delivery log keeps its attempts, numbered
        from 1, beside those of the run that was given up.
        """
        return Delivery(
            self.subscription_id,
            self.event_id,
            self.event_type,
            self.event_timestamp,
            self.payload,
            run=run or new_run(),
        )

    def properties(self, retention_ms: int | None) -> pika.BasicProperties:
        return pika.BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=self.id,
            expiration=str(retention_ms) if retention_ms is not None else None,
            headers={
                SUBSCRIPTION_HEADER: self.subscription_id,
                REASON_HEADER: self.last_reason or "",
                CAUSE_HEADER: self.cause,
            },
        )


def _iso(unix: float | None) -> str | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC).isoformat()


class ConfirmedPublisher(Protocol):
    """Publishes straight to a queue and returns once RabbitMQ stored it: the HooklineBroker.

    Anything with the queue names and a confirmed publish will do: a test passes a fake.
    """

    @property
    def topology(self) -> Topology: ...

    def publish_confirmed(self, queue: str, body: bytes, properties: pika.BasicProperties) -> None: ...


def park_delivery(publisher: ConfirmedPublisher, dead: DeadLetter, retention_ms: int | None) -> None:
    publisher.publish_confirmed(
        publisher.topology.dead_letters_queue, dead.to_json(), dead.properties(retention_ms)
    )


def park_invalid_event(publisher: ConfirmedPublisher, raw: RawEvent, reason: str) -> None:
    properties = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        headers={
            REASON_HEADER: reason,
            ROUTING_KEY_HEADER: raw.routing_key,
            PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
        },
    )
    publisher.publish_confirmed(publisher.topology.invalid_events_queue, raw.body, properties)
