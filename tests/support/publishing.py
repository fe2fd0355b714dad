"""Publishing as any service would: plain pika, the documented contract, nothing from hookline."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pika


def publish(env: dict[str, str], event_type: str = "order.created", count: int = 1) -> list[str]:
    connection = pika.BlockingConnection(pika.URLParameters(env["HOOKLINE_AMQP_URL"]))
    channel = connection.channel()
    channel.confirm_delivery()
    ids = []
    for n in range(count):
        event_id = f"evt_{uuid.uuid4().hex}"
        body = {
            "id": event_id,
            "type": event_type,
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"n": n},
        }
        channel.basic_publish(
            env["HOOKLINE_EXCHANGE"],
            event_type,
            json.dumps(body).encode(),
            pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )
        ids.append(event_id)
    connection.close()
    return ids
