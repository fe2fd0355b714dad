"""The actors and the broker they run on.

``fan_out`` consumes the events queue (raw events, see workers/broker.py);
``deliver`` consumes first attempts and ``retry`` the retries, so a backlog of
retries never holds up fresh deliveries. Both run :func:`deliver_once`. The
logic lives in :mod:`workers.fanout`, :mod:`workers.delivery` and
:mod:`workers.retry`; this module wires it to dramatiq.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dramatiq

from workers import deadletters, delays, delivery, fanout, isolation
from workers.broker import DELIVER_ACTOR, FAN_OUT_ACTOR, RETRY_ACTOR, HooklineBroker, RawEvent
from workers.errors import CircuitOpen, DeliveryFailed
from workers.health import SubscriptionHealth
from workers.logs import get_logger
from workers.middleware.fail_on_error import FailOnError
from workers.retry import GiveUp, RetryPolicy
from workers.runtime import Runtime
from workers.signing import secret_key
from workers.subscriptions import Subscription
from workers.topology import Topology

log = get_logger(component="deliver")

# How long a delivery to an endpoint at its in-flight cap waits before it is offered again:
# 1 s, doubling each time it finds the endpoint busy again, up to a minute.
BUSY_WAIT_SECONDS = 1.0
BUSY_WAIT_MAX_SECONDS = 64.0


@dataclass(frozen=True)
class App:
    broker: HooklineBroker
    runtime: Runtime
    fan_out: dramatiq.Actor[..., Any]
    deliver: dramatiq.Actor[..., Any]
    retry: dramatiq.Actor[..., Any]


def build(runtime: Runtime) -> App:
    """A broker with the actors registered on it; nothing is connected yet."""
    topology = Topology.from_settings(runtime.settings)
    # Only FailOnError: every default middleware costs time per message, and
    # none is needed (retries wait in RabbitMQ, not in dramatiq's delay queue).
    broker = HooklineBroker(topology=topology, url=runtime.settings.amqp_url, middleware=[FailOnError()])
    attempts = Attempts(runtime, broker, RetryPolicy.from_settings(runtime.settings))

    def deliver(**message: Any) -> None:
        attempts.run(delivery.Delivery.from_message(message))

    def fan_out(raw: RawEvent) -> None:
        fanout.fan_out(
            raw,
            subscriptions=runtime.subscriptions,
            max_bytes=runtime.settings.max_event_bytes,
            enqueue=lambda item: deliver_actor.send(**item.to_message()),
            park=lambda raw, reason: deadletters.park_invalid_event(broker, raw, reason),
        )

    def on(queue: str, name: str) -> Any:
        return dramatiq.actor(actor_name=name, queue_name=queue, broker=broker)

    deliver_actor = on(topology.deliveries_queue, DELIVER_ACTOR)(deliver)
    retry_actor = on(topology.retries_queue, RETRY_ACTOR)(deliver)
    fan_out_actor = on(topology.events_queue, FAN_OUT_ACTOR)(fan_out)
    return App(broker, runtime, fan_out_actor, deliver_actor, retry_actor)


class Attempts:
    """Runs one attempt and settles its outcome: delivered, retry scheduled, or dead-lettered."""

    def __init__(self, runtime: Runtime, broker: HooklineBroker, policy: RetryPolicy) -> None:
        self.runtime = runtime
        self.broker = broker
        self.policy = policy
        settings = runtime.settings
        self.endpoints = isolation.Endpoints(
            max_in_flight=settings.endpoint_max_in_flight,
            failure_threshold=settings.breaker_failures,
            cooldown=settings.breaker_cooldown,
        )
        self._health: SubscriptionHealth | None = None
        retention = runtime.settings.dead_letter_retention
        self.retention_ms = None if retention is None else int(retention * 1000)

    @property
    def health(self) -> SubscriptionHealth:
        # Built on first use: the store exists only once the runtime opened the database.
        if self._health is None:
            after = self.runtime.settings.auto_disable_after
            self._health = SubscriptionHealth(self.runtime.subscriptions.store, after, log)
        return self._health

    def run(self, item: delivery.Delivery) -> None:
        now = time.time()
        if not delays.is_due(item.not_before, now):
            delays.wait_in_broker(self.broker, item, now)  # came back from a hop early: keep waiting
            return
        bound = log.bind(event_id=item.event_id, subscription_id=item.subscription_id, attempt=item.attempt)
        subscription = self.deliverable(item, now, bound)
        if subscription is None:
            return
        bound = bound.bind(host=urlsplit(subscription.url).hostname)
        endpoint = isolation.endpoint_of(subscription.url)
        refusal = self.endpoints.enter(endpoint)
        if refusal == isolation.BUSY:
            # Not an attempt: the endpoint is slow, not failing. Wait in RabbitMQ, not on a thread, and
            # longer each time, so a large backlog for one slow endpoint does not churn through the broker.
            wait = min(BUSY_WAIT_SECONDS * 2**item.deferrals, BUSY_WAIT_MAX_SECONDS)
            later = replace(item, not_before=now + wait, deferrals=item.deferrals + 1)
            delays.wait_in_broker(self.broker, later, now)
            bound.debug("delivery_deferred", reason=refusal, wait=wait)
            return
        if refusal == isolation.OPEN:
            failure = CircuitOpen("circuit breaker open")
            self.health.failed(subscription, failure, datetime.now(UTC))
            self.settle_failure(item, failure, attempted_at=now, duration=0, log=bound)
            return
        self.attempt(item, subscription, endpoint, now, bound)

    def deliverable(self, item: delivery.Delivery, now: float, bound: Any) -> Subscription | None:
        """The subscription to deliver to, or None once the delivery was skipped or parked."""
        subscription = self.runtime.subscriptions.get(item.subscription_id)
        if subscription is None:
            bound.info("delivery_skipped", reason="subscription_removed")  # nowhere left to deliver it
            return None
        if not subscription.enabled:
            # Kept, not dropped: once the subscription is enabled again, `hookline dlq replay` sends it.
            dead = deadletters.DeadLetter.of(item, "disabled", now, attempts=item.attempt - 1)
            deadletters.park_delivery(self.broker, dead, self.retention_ms)
            bound.info("delivery_dead_lettered", cause="disabled", dead_letter=dead.id)
            return None
        return subscription

    def attempt(
        self, item: delivery.Delivery, subscription: Subscription, endpoint: str, now: float, bound: Any
    ) -> None:
        keys = [secret_key(secret) for secret in subscription.active_secrets(datetime.now(UTC))]
        started = time.monotonic()
        failure: DeliveryFailed | None = None
        try:
            response = delivery.attempt(
                self.runtime.http_client,
                subscription.url,
                keys,
                item,
                timeout=self.runtime.settings.http_timeout,
            )
        except DeliveryFailed as exc:
            failure = exc
        finally:
            if self.endpoints.leave(endpoint, failure):
                bound.warning("circuit_opened", endpoint=endpoint)
        if failure is not None:
            self.health.failed(subscription, failure, datetime.now(UTC))
            duration = time.monotonic() - started
            self.settle_failure(item, failure, attempted_at=now, duration=duration, log=bound)
            return
        self.health.succeeded(subscription)
        bound.info("delivered", status=response.status, duration=round(response.duration, 4))

    def settle_failure(
        self,
        item: delivery.Delivery,
        failure: DeliveryFailed,
        *,
        attempted_at: float,
        duration: float,
        log: Any,
    ) -> None:
        first = item.first_attempt_at or attempted_at
        now = time.time()
        decision = self.policy.decide(failure, attempt=item.attempt, first_attempt_at=first, now=now)
        failed_log = log.bind(reason=failure.reason, status=failure.status, duration=round(duration, 4))
        if isinstance(decision, GiveUp):
            dead = deadletters.DeadLetter.of(
                item.failed(failure, attempted_at=attempted_at, retry_at=None), decision.cause, now
            )
            deadletters.park_delivery(self.broker, dead, self.retention_ms)
            failed_log.warning(
                "delivery_dead_lettered", error=str(failure), cause=decision.cause, dead_letter=dead.id
            )
            return
        retry = item.failed(failure, attempted_at=attempted_at, retry_at=decision.at)
        delays.wait_in_broker(self.broker, retry, now)
        failed_log.warning("delivery_failed", error=str(failure), retry_in=round(decision.at - now, 3))
