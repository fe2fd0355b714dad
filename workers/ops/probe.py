"""A signed ``hookline.test`` webhook sent straight to a subscription's endpoint, and what it answered.

``hookline subscriptions test`` checks an endpoint with it before real events
go there. The request is made as a worker makes an attempt: the workers' HTTP
client (the SSRF guard of ``HOOKLINE_ALLOWED_NETWORKS``, TLS verification, one
deadline of ``HOOKLINE_HTTP_TIMEOUT``), Standard Webhooks headers signed with
every active secret of the subscription. It goes through no queue, is never
retried, and is not recorded in the delivery log.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from producer.event import Event
from workers.deliverylog.records import response_excerpt
from workers.outbound import http
from workers.outbound.signing import secret_key
from workers.outbound.webhook import signed_headers
from workers.pipeline.delivery import webhook_payload
from workers.settings import Settings
from workers.subscriptions.store import Subscription

TEST_EVENT_TYPE = "hookline.test"


@dataclass(frozen=True, slots=True)
class Answer:
    """What the endpoint answered: its status, how long the request took, the start of its body."""

    subscription_id: str
    webhook_id: str
    host: str  # the URL's host only: a path or query string may carry a token
    status: int
    duration: float  # seconds
    body: str | None  # the first 1 KiB, decoded leniently

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def to_record(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "webhook_id": self.webhook_id,
            "host": self.host,
            "status": self.status,
            "ok": self.ok,
            "duration": round(self.duration, 4),
            "body": self.body,
        }


def probe_event(subscription: Subscription) -> Event:
    """The event a test sends: its type says it is a test, its data which subscription it tests."""
    return Event.create(TEST_EVENT_TYPE, {"subscription_id": subscription.id})


def send_test(settings: Settings, subscription: Subscription, event: Event | None = None) -> Answer:
    """POST a signed test event once; a DeliveryFailed (refused address, no connection, timeout) if none.

    Any status is an answer, 4xx and 5xx included: the caller says what it means.
    """
    event = event or probe_event(subscription)
    body = webhook_payload(event).encode()
    keys = [secret_key(secret) for secret in subscription.active_secrets(datetime.now(UTC))]
    headers = signed_headers(event.id, keys, body, int(time.time()))
    with http.build_client(settings, max_kept_alive=1) as client:
        response = http.post(
            client, subscription.url, headers=headers, body=body, timeout=settings.http_timeout
        )
    return Answer(
        subscription_id=subscription.id,
        webhook_id=event.id,
        host=host_of(subscription.url),
        status=response.status,
        duration=response.duration,
        body=response_excerpt(response.body),
    )


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "?"
