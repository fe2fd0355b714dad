"""The two actors and the broker they run on.

``fan_out`` consumes the events queue (raw events, see workers/broker.py);
``deliver`` consumes the deliveries queue. Both are thin: the logic lives in
:mod:`workers.fanout` and :mod:`workers.delivery`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dramatiq

from workers import deadletters, delivery, fanout
from workers.broker import DELIVER_ACTOR, FAN_OUT_ACTOR, HooklineBroker, RawEvent
from workers.errors import DeliveryFailed
from workers.logs import get_logger
from workers.middleware.fail_on_error import FailOnError
from workers.runtime import Runtime
from workers.signing import secret_key
from workers.topology import Topology

log = get_logger(component="deliver")


@dataclass(frozen=True)
class App:
    broker: HooklineBroker
    runtime: Runtime
    fan_out: dramatiq.Actor[..., Any]
    deliver: dramatiq.Actor[..., Any]


def build(runtime: Runtime) -> App:
    """A broker with both actors registered on it; nothing is connected yet."""
    topology = Topology.from_settings(runtime.settings)
    # Only FailOnError: every default middleware costs time per message, and
    # none of them is needed (no delays, no time limits, no pipelines).
    broker = HooklineBroker(topology=topology, url=runtime.settings.amqp_url, middleware=[FailOnError()])

    def deliver(**message: Any) -> None:
        deliver_once(runtime, delivery.Delivery.from_message(message))

    def fan_out(raw: RawEvent) -> None:
        fanout.fan_out(
            raw,
            subscriptions=runtime.subscriptions,
            max_bytes=runtime.settings.max_event_bytes,
            enqueue=lambda item: deliver_actor.send(**item.to_message()),
            park=lambda raw, reason: deadletters.park_invalid_event(broker, raw, reason),
        )

    on_deliveries = dramatiq.actor(
        actor_name=DELIVER_ACTOR, queue_name=topology.deliveries_queue, broker=broker
    )
    on_events = dramatiq.actor(actor_name=FAN_OUT_ACTOR, queue_name=topology.events_queue, broker=broker)
    deliver_actor, fan_out_actor = on_deliveries(deliver), on_events(fan_out)
    return App(broker, runtime, fan_out_actor, deliver_actor)


def deliver_once(runtime: Runtime, item: delivery.Delivery) -> None:
    """Make one attempt; a failure raises, and FailOnError parks the message."""
    bound = log.bind(event_id=item.event_id, subscription_id=item.subscription_id, attempt=item.attempt)
    subscription = runtime.subscriptions.get(item.subscription_id)
    if subscription is None or not subscription.enabled:
        reason = "subscription_removed" if subscription is None else "subscription_disabled"
        bound.info("delivery_skipped", reason=reason)
        return
    bound = bound.bind(host=urlsplit(subscription.url).hostname)
    keys = [secret_key(secret) for secret in subscription.active_secrets(datetime.now(UTC))]
    started = time.monotonic()
    try:
        response = delivery.attempt(
            runtime.http_client, subscription.url, keys, item, timeout=runtime.settings.http_timeout
        )
    except DeliveryFailed as exc:
        duration = round(time.monotonic() - started, 4)
        bound.warning(
            "delivery_failed", reason=exc.reason, status=exc.status, error=str(exc), duration=duration
        )
        raise
    bound.info("delivered", status=response.status, duration=round(response.duration, 4))
