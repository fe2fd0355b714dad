"""The delivery log's records as the pipeline makes them: an event fanned out, an attempt, a state change.

Plain constructors from what the pipeline has at hand (the event, a delivery
and what became of it), so fan-out and attempts say *what* happened and this
module says how it is written down (:mod:`workers.deliverylog.records`). The
records of one actor message travel together to the log queue
(:mod:`workers.broker.recordbatch`); each one's id comes from what it
describes, so a message redelivered after a crash records the same ids again.
"""

from __future__ import annotations

from producer.event import Event
from workers.deliverylog.records import (
    AttemptRecord,
    DeliveryState,
    EventRecord,
    StateRecord,
    response_excerpt,
)
from workers.errors import DeliveryFailed
from workers.pipeline.delivery import Delivery

ERROR_CHARS = 500  # as a dead letter keeps it


def event_received(event: Event, payload: str, *, received_at: float, matched: int) -> EventRecord:
    """An event as fan-out read it; ``matched`` counts its deliveries, skipped ones included."""
    return EventRecord(
        id=event.id,
        type=event.type,
        timestamp=event.timestamp,
        payload=payload,
        received_at=received_at,
        matched=matched,
    )


def delivered(
    item: Delivery, *, started_at: float, duration: float, status: int, body: bytes
) -> AttemptRecord:
    """An attempt the endpoint answered with a 2xx."""
    return AttemptRecord(
        event_id=item.event_id,
        subscription_id=item.subscription_id,
        run=item.run,
        attempt=item.attempt,
        started_at=started_at,
        duration=duration,
        status=status,
        reason=None,
        error=None,
        response_body=response_excerpt(body),
        state=DeliveryState.DELIVERED,
        next_attempt_at=None,
        event_type=item.event_type,
    )


def failed(
    item: Delivery, failure: DeliveryFailed, *, started_at: float, duration: float, retry_at: float | None
) -> AttemptRecord:
    """An attempt that failed, or was refused before a request: retried at ``retry_at``, or given up."""
    return AttemptRecord(
        event_id=item.event_id,
        subscription_id=item.subscription_id,
        run=item.run,
        attempt=item.attempt,
        started_at=started_at,
        duration=duration,
        status=failure.status,
        reason=failure.reason,
        error=str(failure)[:ERROR_CHARS],
        response_body=response_excerpt(failure.response_body),
        state=DeliveryState.RETRYING if retry_at is not None else DeliveryState.DEAD_LETTERED,
        next_attempt_at=retry_at,
        event_type=item.event_type,
    )


def changed(
    item: Delivery,
    state: DeliveryState,
    *,
    at: float,
    reason: str,
    attempts: int,
    next_attempt_at: float | None = None,
) -> StateRecord:
    """A delivery's state changed without a request: deferred, skipped, or parked."""
    return StateRecord(
        event_id=item.event_id,
        subscription_id=item.subscription_id,
        run=item.run,
        state=state,
        at=at,
        attempts=attempts,
        reason=reason,
        next_attempt_at=next_attempt_at,
        event_type=item.event_type,
    )
