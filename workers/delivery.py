"""One delivery: a webhook for one event and one subscription, and one attempt to POST it.

A delivery message carries everything an attempt needs except the endpoint's
URL and secrets, which are looked up when the attempt is made so that a
rotated secret or a disabled subscription takes effect on queued deliveries.
The body is serialised once at fan-out and sent byte for byte on every attempt;
the ``webhook-timestamp`` and signature are fresh on each attempt, because
receivers reject timestamps older than a few minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from email.utils import parsedate_to_datetime
from typing import Any

from producer.event import Event
from workers import http
from workers.errors import (
    ClientErrorStatus,
    DeliveryFailed,
    EndpointGone,
    RedirectNotFollowed,
    RetryableHttpStatus,
)
from workers.signing import sign

# Timeout, too early, too many requests: the receiver asks to come back later.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})


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

    @classmethod
    def for_event(cls, event: Event, subscription_id: str, payload: str) -> Delivery:
        return cls(subscription_id, event.id, event.type, event.timestamp, payload)

    @classmethod
    def from_message(cls, kwargs: dict[str, Any]) -> Delivery:
        return cls(**kwargs)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

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


def webhook_payload(event: Event) -> str:
    """The webhook body, ``{"type", "timestamp", "data"}``, as Standard Webhooks recommends."""
    return json.dumps(
        {"type": event.type, "timestamp": event.timestamp, "data": event.data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def signed_headers(delivery: Delivery, keys: Sequence[bytes], body: bytes, now: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(keys, delivery.event_id, now, body),
    }


def attempt(
    client: http.DeliveryClient, url: str, keys: Sequence[bytes], delivery: Delivery, *, timeout: float
) -> http.Response:
    """POST the webhook once; return the 2xx response or raise a DeliveryFailed subclass."""
    body = delivery.payload.encode("utf-8")
    headers = signed_headers(delivery, keys, body, int(time.time()))
    response = http.post(client, url, headers=headers, body=body, timeout=timeout)
    check_status(response)
    return response


def check_status(response: http.Response) -> None:
    status = response.status
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        # Logged and kept with the failure: drop a query string, it may carry a token.
        where = response.location.split("?", 1)[0] if response.location else None
        message = f"redirect {status} not followed (to {where})"
        raise RedirectNotFollowed(message, status=status, location=where)
    if status == 410:
        raise EndpointGone("410 Gone: the endpoint asked for no more deliveries", status=status)
    if 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES:
        raise ClientErrorStatus(f"HTTP {status}", status=status)
    retry_after = parse_retry_after(response.retry_after) if status in (429, 503) else None
    raise RetryableHttpStatus(f"HTTP {status}", status=status, retry_after=retry_after)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))
