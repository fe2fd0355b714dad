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
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from producer.event import Event
from workers import http
from workers.errors import EndpointGone, RedirectNotFollowed, RetryableHttpStatus
from workers.signing import sign


@dataclass(frozen=True, slots=True)
class Delivery:
    subscription_id: str
    event_id: str
    event_type: str
    event_timestamp: str
    payload: str
    attempt: int = 1

    @classmethod
    def for_event(cls, event: Event, subscription_id: str, payload: str) -> Delivery:
        return cls(subscription_id, event.id, event.type, event.timestamp, payload)

    @classmethod
    def from_message(cls, kwargs: dict[str, Any]) -> Delivery:
        return cls(**kwargs)

    def to_message(self) -> dict[str, Any]:
        return asdict(self)

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
    client: httpx.Client, url: str, keys: Sequence[bytes], delivery: Delivery, *, timeout: float
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
    raise RetryableHttpStatus(f"HTTP {status}", status=status)
