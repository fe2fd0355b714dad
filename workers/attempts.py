"""Attempts: make one delivery attempt and settle its outcome.

An outcome is settled before the message that carried the delivery is acked:
delivered, scheduled for a retry (published to a delay queue, confirmed), or
dead-lettered (published, confirmed). Nothing else acks a delivery.

First attempts are made by the fan-out itself, straight from the event
(:meth:`Attempts.first_attempts`): a healthy delivery costs one HTTP request
and no broker round trip. Only a delivery that failed, or whose endpoint was
busy, goes through RabbitMQ, and comes back on the retries queue
(:meth:`Attempts.run`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Executor, wait
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from workers import deadletters, delays, delivery, isolation
from workers.broker import HooklineBroker
from workers.errors import CircuitOpen, DeliveryFailed
from workers.health import SubscriptionHealth
from workers.logs import get_logger
from workers.retry import GiveUp, RetryPolicy
from workers.runtime import Runtime
from workers.signing import secret_key
from workers.subscriptions import Subscription

log = get_logger(component="deliver")

# How long a delivery to an endpoint at its in-flight cap waits before it is offered again:
# 1 s, doubling each time it finds the endpoint busy again, up to a minute.
BUSY_WAIT_SECONDS = 1.0
BUSY_WAIT_MAX_SECONDS = 64.0


class Attempts:
    """Runs attempts and settles their outcomes: delivered, retry scheduled, or dead-lettered."""

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

    def first_attempts(self, pairs: Sequence[tuple[delivery.Delivery, Subscription]], pool: Executor) -> None:
        """First attempts for one event's deliveries; returns once each one is settled.

        One delivery runs on the calling thread. Several run side by side on
        ``pool``, so a slow endpoint holds up only its own delivery, not the
        event's others (which are settled while it waits).
        """
        if len(pairs) == 1:
            self.first(*pairs[0])
            return
        futures = [pool.submit(self.first, item, subscription) for item, subscription in pairs]
        wait(futures)  # all settled before any error surfaces: none is left running unowned
        for future in futures:
            future.result()  # re-raises: FailOnError then keeps the event instead of acking it

    def first(self, item: delivery.Delivery, subscription: Subscription) -> None:
        bound = log.bind(event_id=item.event_id, subscription_id=item.subscription_id, attempt=item.attempt)
        self.admit(item, subscription, time.time(), bound)

    def run(self, item: delivery.Delivery) -> None:
        """An attempt for a delivery that came back from RabbitMQ (a retry, a deferral or a replay)."""
        now = time.time()
        if not delays.is_due(item.not_before, now):
            delays.wait_in_broker(self.broker, item, now)  # came back from a hop early: keep waiting
            return
        bound = log.bind(event_id=item.event_id, subscription_id=item.subscription_id, attempt=item.attempt)
        subscription = self.deliverable(item, now, bound)
        if subscription is not None:
            self.admit(item, subscription, now, bound)

    def admit(self, item: delivery.Delivery, subscription: Subscription, now: float, bound: Any) -> None:
        """Attempt now, unless the endpoint is at its cap (defer) or its breaker is open (fail fast)."""
        bound = bound.bind(host=urlsplit(subscription.url).hostname)
        endpoint = isolation.endpoint_of(subscription.url)
        refusal = self.endpoints.enter(endpoint, wait=self.runtime.settings.endpoint_busy_wait)
        if refusal == isolation.BUSY:
            self.defer(item, now, bound)
        elif refusal == isolation.OPEN:
            failure = CircuitOpen("circuit breaker open")
            self.health.failed(subscription, failure, datetime.now(UTC))
            self.settle_failure(item, failure, attempted_at=now, duration=0, log=bound)
        else:
            self.attempt(item, subscription, endpoint, now, bound)

    def defer(self, item: delivery.Delivery, now: float, bound: Any) -> None:
        # Not an attempt: the endpoint is slow, not failing. Wait in RabbitMQ, not on a thread, and
        # longer each time, so a large backlog for one slow endpoint does not churn through the broker.
        wait = min(BUSY_WAIT_SECONDS * 2**item.deferrals, BUSY_WAIT_MAX_SECONDS)
        later = replace(item, not_before=now + wait, deferrals=item.deferrals + 1)
        delays.wait_in_broker(self.broker, later, now)
        bound.debug("delivery_deferred", reason=isolation.BUSY, wait=wait)

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
