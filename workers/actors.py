"""The actors and the broker they run on.

``fan_out`` consumes the events queue (raw events, see workers/broker.py) and
makes each delivery's first attempt itself (:mod:`workers.attempts`).
``retry`` consumes the retries queue: deliveries back from a delay queue after
a failure or a busy endpoint, many to a message (workers/delaybatch.py), and
those ``hookline dlq replay`` resends, one to a message. So a
backlog of retries never holds up fresh deliveries. The logic lives in :mod:`workers.fanout`,
:mod:`workers.attempts` and :mod:`workers.retry`; this module wires it to dramatiq.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dramatiq

from workers.broker import heldacks
from workers.broker.rabbitmq import HooklineBroker
from workers.broker.topology import FAN_OUT_ACTOR, RETRY_ACTOR, RawEvent, Topology
from workers.middleware.fail_on_error import FailOnError
from workers.pipeline import deadletters, delivery, fanout
from workers.pipeline.attempts import Attempts
from workers.pipeline.retry_policy import RetryPolicy
from workers.runtime import Runtime
from workers.subscriptions.store import Subscription


@dataclass(frozen=True)
class App:
    broker: HooklineBroker
    runtime: Runtime
    fan_out: dramatiq.Actor[..., Any]
    retry: dramatiq.Actor[..., Any]


def build(runtime: Runtime) -> App:
    """A broker with the actors registered on it; nothing is connected yet."""
    topology = Topology.from_settings(runtime.settings)
    # Only FailOnError: every default middleware costs time per message, and
    # none is needed (retries wait in RabbitMQ, not in dramatiq's delay queue).
    broker = HooklineBroker(topology=topology, url=runtime.settings.amqp_url, middleware=[FailOnError()])
    attempts = Attempts(runtime, broker, RetryPolicy.from_settings(runtime.settings))

    def deliver(**message: Any) -> None:
        # A batch from a delay queue (workers/broker/delaybatch.py), or one delivery (a replay).
        batch = message.get("deliveries", [message])
        items = [delivery.Delivery.from_message(each) for each in batch]
        heldacks.hold(attempts.run_all(items, runtime.spare_threads))

    def first_attempts(pairs: Sequence[tuple[delivery.Delivery, Subscription]]) -> None:
        heldacks.hold(attempts.first_attempts(pairs, runtime.spare_threads))

    def fan_out(raw: RawEvent) -> None:
        fanout.fan_out(
            raw,
            subscriptions=runtime.subscriptions,
            max_bytes=runtime.settings.max_event_bytes,
            deliver=first_attempts,
            park=lambda raw, reason: deadletters.park_invalid_event(broker, raw, reason),
        )

    def on(queue: str, name: str) -> Any:
        return dramatiq.actor(actor_name=name, queue_name=queue, broker=broker)

    retry_actor = on(topology.retries_queue, RETRY_ACTOR)(deliver)
    fan_out_actor = on(topology.events_queue, FAN_OUT_ACTOR)(fan_out)
    return App(broker, runtime, fan_out_actor, retry_actor)
