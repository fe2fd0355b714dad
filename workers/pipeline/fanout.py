"""Fan-out: one event in, one delivery per matching enabled subscription out.

The event is validated (contract, size, routing key = type) and anything else
is parked with its reason: a malformed message must never stop the queue.
The webhook body is serialised once and shared by every delivery, and the
deliveries are handed over together (``deliver``), so the caller can make
their first attempts at once instead of queueing each one first.

Each valid event is recorded for the delivery log (``record``), with how many
subscriptions it matched, none included; so is a delivery to a matching
subscription that is disabled (paused), as skipped, so that it can be sent
once the subscription resumes. An invalid message is not an event: it is not
recorded, only parked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from producer.errors import InvalidEvent
from producer.event import Event
from workers.broker.topology import RawEvent
from workers.deliverylog.records import DeliveryState, Record
from workers.observability import metrics
from workers.observability.logs import get_logger
from workers.pipeline import journal
from workers.pipeline.delivery import Delivery, webhook_payload
from workers.subscriptions.cache import SubscriptionCache
from workers.subscriptions.store import Subscription
from workers.vocabulary import EventOutcome, Rejection, SkipReason

log = get_logger(component="fan_out")


def parse(raw: RawEvent, max_bytes: int) -> Event:
    """The event in ``raw``, or InvalidEvent saying what is wrong with it."""
    event = Event.from_json(raw.body, max_bytes=max_bytes)
    if raw.routing_key != event.type:
        raise InvalidEvent(f"routing key {raw.routing_key!r} is not the event type {event.type!r}")
    return event


def fan_out(
    raw: RawEvent,
    *,
    subscriptions: SubscriptionCache,
    max_bytes: int,
    deliver: Callable[[Sequence[tuple[Delivery, Subscription]]], None],
    park: Callable[[RawEvent, str], None],
    record: Callable[[Record], None],
    clock: Callable[[], float] = time.time,
) -> int:
    """Hand the event's deliveries to ``deliver``; return how many. Invalid events are parked instead.

    ``record`` is told of the event, and of a skipped delivery to each disabled subscription it matches.
    """
    try:
        event = parse(raw, max_bytes)
    except InvalidEvent as exc:
        _park_invalid(raw, str(exc), park)
        return 0
    received_at = clock()
    matching = subscriptions.matching(event.type)
    metrics.event_received(EventOutcome.FANNED_OUT if matching else EventOutcome.NO_SUBSCRIBERS, event.type)
    payload = webhook_payload(event)
    paused = subscriptions.matching_disabled(event.type)
    _record(event, payload, received_at=received_at, enabled=len(matching), paused=paused, record=record)
    if matching:
        deliver([(Delivery.for_event(event, sub.id, payload), sub) for sub in matching])
    # A fanned-out event is logged at debug: each of its deliveries logs a line with the event id,
    # and a line per event costs a noticeable share of a delivery's CPU. An event nobody gets stays
    # at info: it is the answer to "why did no webhook arrive?".
    (log.debug if matching else log.info)(
        "event_fanned_out" if matching else "event_no_subscribers",
        event_id=event.id,
        event_type=event.type,
        deliveries=len(matching),
        redelivered=raw.redelivered,
    )
    return len(matching)


def _park_invalid(raw: RawEvent, reason: str, park: Callable[[RawEvent, str], None]) -> None:
    park(raw, reason)
    metrics.event_received(EventOutcome.INVALID, None)
    metrics.dead_lettered(Rejection.INVALID_EVENT)
    log.warning("event_invalid", reason=reason, routing_key=raw.routing_key, size=len(raw.body))


def _record(
    event: Event,
    payload: str,
    *,
    received_at: float,
    enabled: int,
    paused: Sequence[Subscription],
    record: Callable[[Record], None],
) -> None:
    """The event, matched by ``enabled`` subscriptions and ``paused``, whose deliveries are skipped."""
    record(journal.event_received(event, payload, received_at=received_at, matched=enabled + len(paused)))
    reason = SkipReason.SUBSCRIPTION_DISABLED
    for subscription in paused:
        skipped = Delivery.for_event(event, subscription.id, payload)
        record(journal.changed(skipped, DeliveryState.SKIPPED, at=received_at, reason=reason, attempts=0))
