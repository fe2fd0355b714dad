"""A dead letter as the workers park one, for tests that put dead letters in a queue themselves."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from workers.pipeline.deadletters import DeadLetter
from workers.pipeline.delivery import Delivery


def dead_letter(subscription_id: str, *, event_type: str = "order.created", age: float = 60) -> DeadLetter:
    """A delivery given up after five attempts (the last a 503), ``age`` seconds ago."""
    now = datetime.now(UTC).timestamp()
    payload = json.dumps({"type": event_type, "timestamp": "2024-05-01T12:00:00Z", "data": {"n": 1}})
    given_up = Delivery(
        subscription_id,
        f"evt_{uuid.uuid4().hex}",
        event_type,
        "2024-05-01T12:00:00Z",
        payload,
        attempt=5,
        first_attempt_at=now - age - 600,
        last_attempt_at=now - age,
        last_status=503,
        last_reason="http_status",
        last_error="HTTP 503",
    )
    return DeadLetter.of(given_up, "exhausted", now=now - age)
