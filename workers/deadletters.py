"""Parking messages that cannot be processed, so an operator can see them and nothing is lost.

A malformed event goes to ``<prefix>.events.invalid`` byte for byte, with the
reason in its headers. The publish waits for the broker's confirm (the
broker's channels are in confirm mode), and only then is the original acked.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pika

from workers.broker import HooklineBroker, RawEvent

REASON_HEADER = "x-hookline-reason"
ROUTING_KEY_HEADER = "x-hookline-routing-key"
PARKED_AT_HEADER = "x-hookline-parked-at"


def park_invalid_event(broker: HooklineBroker, raw: RawEvent, reason: str) -> None:
    properties = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        headers={
            REASON_HEADER: reason,
            ROUTING_KEY_HEADER: raw.routing_key,
            PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
        },
    )
    try:
        broker.channel.basic_publish(
            exchange="",
            routing_key=broker.topology.invalid_events_queue,
            body=raw.body,
            properties=properties,
            mandatory=True,
        )
    except (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError):
        # A broken channel must not be reused by the next message on this thread.
        del broker.connection
        raise
