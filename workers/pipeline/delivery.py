"""One delivery: a webhook for one event and one subscription, as it travels between attempts.

A delivery message carries everything an attempt needs except the endpoint's
URL and secrets, which are looked up when the attempt is made so that a
rotated secret or a disabled subscription takes effect on queued deliveries.
The body is serialised once at fan-out and sent byte for byte on every attempt
(:func:`workers.outbound.webhook.send` signs it afresh each time).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, replace
from typing import Any

from producer.event import Event
from workers.errors import DeliveryFailed


@dataclass(frozen=True, slots=True)
class Delivery:
    subscription_id: str
    event_id: str
    event_type: str
    event_timestamp: str
    payload: str
    attempt: int = 1
    # Unix seconds. not_before is when the next attempt is due: a message that
    # comes back from a delay queue earlier is parked again, never attempted early.
    first_attempt_at: float | None = None
    not_before: float | None = None
    last_attempt_at: float | None = None
    last_status: int | None = None
    last_reason: str | None = None
    last_error: str | None = None
    # Times this delivery was sent back because its endpoint was at its in-flight cap.
    deferrals: int = 0
    # Which run of this event's delivery to this subscription: "" for the fan-out's, a fresh
    # "rp_..." for each replay, whose attempts count from 1 again (see workers/deliverylog/records.py).
    # A field with a default: messages queued before it existed read as the first run.
    run: str = ""

    @classmethod
    def for_event(cls, event: Event, subscription_id: str, payload: str) -> Delivery:
        return cls(subscription_id, event.id, event.type, event.timestamp, payload)

    @classmethod
    def from_message(cls, kwargs: dict[str, Any]) -> Delivery:
        return cls(**kwargs)

    def to_message(self) -> dict[str, Any]:
        message = asdict(self)
        if not self.run:
            # The first run's messages stay as they were: a worker not yet upgraded reads them.
            del message["run"]
        return message

    def failed(self, failure: DeliveryFailed, *, attempted_at: float, retry_at: float | None) -> Delivery:
        """This delivery after a failed attempt, with the next attempt due at ``retry_at``."""
        return replace(
            self,
            attempt=self.attempt + 1 if retry_at is not None else self.attempt,
            first_attempt_at=self.first_attempt_at or attempted_at,
            not_before=retry_at,
            last_attempt_at=attempted_at,
            last_status=failure.status,
            last_reason=failure.reason,
            last_error=str(failure)[:500],
        )

    def __repr__(self) -> str:
        # dramatiq logs messages with repr(); the payload stays out of log lines.
        return f"Delivery({self.event_id!r} -> {self.subscription_id!r})"


def new_run() -> str:
    """A run id for a replay: fresh each time, so a replay never mixes its attempts with an earlier run's."""
    return f"rp_{uuid.uuid4().hex}"


def webhook_payload(event: Event) -> str:
    """The webhook body, ``{"type", "timestamp", "data"}``, as Standard Webhooks recommends."""
    return json.dumps(
        {"type": event.type, "timestamp": event.timestamp, "data": event.data},
        separators=(",", ":"),
        ensure_ascii=False,
    )
