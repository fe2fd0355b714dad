"""Delivery-log records as workers make them, for tests and benchmarks: short to write, true to shape."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from workers.deliverylog.records import AttemptRecord, DeliveryState, EventRecord, StateRecord

# A fixed "now" for stores made with clock=lambda: NOW; records are placed relative to it.
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
T0 = NOW.timestamp()
DAY = 86400.0


def body(event_type: str = "order.created", **data: object) -> str:
    """A webhook body as fan-out serialises it."""
    return json.dumps(
        {"type": event_type, "timestamp": "2026-03-10T11:59:59Z", "data": data or {"order_id": 42}},
        separators=(",", ":"),
    )


def event(
    event_id: str, *, at: float = T0, event_type: str = "order.created", matched: int = 1
) -> EventRecord:
    return EventRecord(
        id=event_id,
        type=event_type,
        timestamp="2026-03-10T11:59:59Z",
        payload=body(event_type, event=event_id),
        received_at=at,
        matched=matched,
    )


def attempt(
    event_id: str,
    subscription_id: str,
    number: int,
    *,
    at: float,
    state: DeliveryState,
    status: int | None = None,
    reason: str | None = None,
    run: str = "",
    event_type: str = "order.created",
    next_at: float | None = None,
    response: str | None = None,
) -> AttemptRecord:
    delivered = state is DeliveryState.DELIVERED
    return AttemptRecord(
        event_id=event_id,
        subscription_id=subscription_id,
        run=run,
        attempt=number,
        started_at=at,
        duration=0.05,
        status=status if status is not None or not delivered else 200,
        reason=reason if reason is not None or delivered or status is None else "http_status",
        error=None if delivered else f"attempt {number} failed",
        response_body=response,
        state=state,
        next_attempt_at=next_at if next_at is not None or state is not DeliveryState.RETRYING else at + 5,
        event_type=event_type,
    )


def state(
    event_id: str,
    subscription_id: str,
    new_state: DeliveryState,
    *,
    at: float,
    attempts: int = 0,
    reason: str | None = None,
    run: str = "",
    event_type: str = "order.created",
) -> StateRecord:
    return StateRecord(
        event_id=event_id,
        subscription_id=subscription_id,
        run=run,
        state=new_state,
        at=at,
        attempts=attempts,
        reason=reason,
        next_attempt_at=None,
        event_type=event_type,
    )
