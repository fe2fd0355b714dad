"""The whole pipeline on the real broker: plain AMQP publish -> fan-out -> signed webhook on loopback."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pika
import pytest
from standardwebhooks import Webhook
from support.processes import Worker, messages, run_hookline, run_json, wait_until
from support.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def worker(hookline_env: dict[str, str], tmp_path: Path) -> Iterator[Worker]:
    handle = Worker(hookline_env, tmp_path / "worker.log")
    yield handle
    handle.kill()


def publish_by_contract(
    channel: pika.adapters.blocking_connection.BlockingChannel,
    exchange: str,
    event_type: str,
    data: dict[str, object],
    event_id: str | None = None,
) -> str:
    """What a service in any language does: JSON body, routing key = type, persistent."""
    event_id = event_id or f"evt_{uuid.uuid4().hex}"
    event = {"id": event_id, "type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": data}
    channel.basic_publish(
        exchange,
        event_type,
        json.dumps(event).encode(),
        pika.BasicProperties(content_type="application/json", delivery_mode=2, message_id=event_id),
        mandatory=True,
    )
    return event_id


def test_a_thousand_events_become_exactly_a_thousand_verified_webhooks(
    hookline_env: dict[str, str],
    hook_receiver: Receiver,
    worker: Worker,
    amqp_connection: pika.BlockingConnection,
) -> None:
    run_hookline(hookline_env, "setup")
    orders = run_json(
        hookline_env, "subscriptions", "add", "--url", f"{hook_receiver.url}/orders", "--event", "order.*"
    )
    run_json(
        hookline_env,
        "subscriptions",
        "add",
        "--url",
        f"{hook_receiver.url}/payments",
        "--event",
        "payment.failed",
    )
    channel = amqp_connection.channel()
    channel.confirm_delivery()
    exchange = hookline_env["HOOKLINE_EXCHANGE"]

    # Published before any worker ever ran: the events queue holds them.
    order_ids = {publish_by_contract(channel, exchange, "order.created", {"n": n}) for n in range(1000)}
    payment_ids = {publish_by_contract(channel, exchange, "payment.failed", {"n": n}) for n in range(20)}
    publish_by_contract(channel, exchange, "user.signed_up", {"ignored": True})
    channel.basic_publish(
        exchange, "order.created", b"this is not json", pika.BasicProperties(delivery_mode=2)
    )
    channel.basic_publish(exchange, "order.created", b'{"id": "x", "type": "order.created"}')

    worker.start([f"{hookline_env['HOOKLINE_QUEUE_PREFIX']}.events"])
    wait_until(
        lambda: len(hook_receiver.on("/orders")) >= 1000 and len(hook_receiver.on("/payments")) >= 20,
        timeout=120,
        what="1,000 order webhooks",
        log=worker.log_path,
    )

    delivered = hook_receiver.on("/orders")
    verifier = Webhook(orders["secret"])
    for request in delivered:
        payload = verifier.verify(request.body, request.headers)
        assert payload["type"] == "order.created"
    assert sorted(request.headers["webhook-id"] for request in delivered) == sorted(order_ids)
    assert {request.headers["webhook-id"] for request in hook_receiver.on("/payments")} == payment_ids
    assert worker.terminate() == 0
    invalid_queue = f"{hookline_env['HOOKLINE_QUEUE_PREFIX']}.events.invalid"
    assert messages(hookline_env["HOOKLINE_AMQP_URL"], invalid_queue) == 2
