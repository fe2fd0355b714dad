"""Fan-out: one event in, one delivery per matching enabled subscription out.

The event is validated (contract, size, routing key = type) and anything else
is parked with its reason: a malformed message must never stop the queue.
The webhook body is serialised once and shared by every delivery.
"""

from __future__ import annotations

from collections.abc import Callable

from producer.errors import InvalidEvent
from producer.event import Event
from workers.broker import RawEvent
from workers.cache import SubscriptionCache
from workers.delivery import Delivery, webhook_payload
from workers.logs import get_logger

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
    enqueue: Callable[[Delivery], object],
    park: Callable[[RawEvent, str], None],
) -> int:
    """Enqueue the event's deliveries; return how many. Invalid events are parked instead."""
    try:
        event = parse(raw, max_bytes)
    except InvalidEvent as exc:
        park(raw, str(exc))
        log.warning("event_invalid", reason=str(exc), routing_key=raw.routing_key, size=len(raw.body))
        return 0
    matching = subscriptions.matching(event.type)
    if matching:
        payload = webhook_payload(event)
        for subscription in matching:
            enqueue(Delivery.for_event(event, subscription.id, payload))
    log.info(
        "event_fanned_out" if matching else "event_no_subscribers",
        event_id=event.id,
        event_type=event.type,
        deliveries=len(matching),
        redelivered=raw.redelivered,
    )
    return len(matching)
