"""The JSON an event's or a delivery's history is shown as: ``hookline events show --json``,
``hookline deliveries show --json`` and the API's ``GET /v1/events/{id}``, ``/v1/deliveries/{id}``.

One shape for the CLI and the API, so that a user moves between them.
"""

from __future__ import annotations

import json
from typing import Any

from workers.deliverylog.queries import DeliveryHistory, EventHistory


def event_json(history: EventHistory) -> dict[str, Any]:
    """``hookline events show --json``."""
    record = history.event.to_record()
    record["payload"] = payload_json(history.event.payload)
    return {
        "event": record,
        "deliveries": [delivery_json(each, with_event=False) for each in history.deliveries],
    }


def delivery_json(history: DeliveryHistory, *, with_event: bool) -> dict[str, Any]:
    """``hookline deliveries show --json`` (with its event), or a delivery of ``events show``."""
    record = history.delivery.to_record()
    if with_event:
        record["event"] = None if history.event is None else history.event.to_record(with_payload=False)
    record["attempts"] = [attempt.to_record() for attempt in history.attempts]
    return record


def payload_json(payload: str | None) -> Any:
    """The webhook body as JSON (it always is), so ``jq .event.payload.data`` reads it."""
    if payload is None:
        return None
    try:
        return json.loads(payload)
    except ValueError:
        return payload
