"""A Standard Webhooks request: the signed headers, one POST, and what the answer means.

The ``webhook-timestamp`` and signature are made afresh for each POST, because
receivers reject timestamps older than a few minutes; the body is sent byte
for byte as it was serialised at fan-out.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime

from workers.errors import (
    ClientErrorStatus,
    DeliveryFailed,
    EndpointGone,
    RedirectNotFollowed,
    RetryableHttpStatus,
)
from workers.outbound import http
from workers.outbound.signing import sign

# Timeout, too early, too many requests: the receiver asks to come back later.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 425, 429})


def signed_headers(webhook_id: str, keys: Sequence[bytes], body: bytes, now: int) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(keys, webhook_id, now, body),
    }


def send(
    client: http.DeliveryClient,
    url: str,
    keys: Sequence[bytes],
    webhook_id: str,
    payload: str,
    *,
    timeout: float,
) -> http.Response:
    """POST the webhook once; return the 2xx response or raise a DeliveryFailed subclass."""
    body = payload.encode("utf-8")
    headers = signed_headers(webhook_id, keys, body, int(time.time()))
    response = http.post(client, url, headers=headers, body=body, timeout=timeout)
    check_status(response)
    return response


def check_status(response: http.Response) -> None:
    """Nothing for a 2xx; otherwise the failure it means, carrying what the endpoint answered."""
    if 200 <= response.status < 300:
        return
    failure = _failure(response)
    failure.response_body = response.body  # the delivery log keeps its start: the endpoint's own words
    raise failure


def _failure(response: http.Response) -> DeliveryFailed:
    status = response.status
    if 300 <= status < 400:
        # Logged and kept with the failure: drop a query string, it may carry a token.
        where = response.location.split("?", 1)[0] if response.location else None
        message = f"redirect {status} not followed (to {where})"
        return RedirectNotFollowed(message, status=status, location=where)
    if status == 410:
        return EndpointGone("410 Gone: the endpoint asked for no more deliveries", status=status)
    if 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES:
        return ClientErrorStatus(f"HTTP {status}", status=status)
    retry_after = parse_retry_after(response.retry_after) if status in (429, 503) else None
    return RetryableHttpStatus(f"HTTP {status}", status=status, retry_after=retry_after)


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
