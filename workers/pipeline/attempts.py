"""Attempts: make one delivery attempt and settle its outcome.

An outcome is settled before the message that carried the delivery is acked:
delivered, dead-lettered (published, confirmed), or sent to wait in a delay
queue, for a retry or because its endpoint is busy. The last is batched
(workers/delaybatch.py) and not waited for here: the futures are returned and
the ack waits for them (workers/heldacks.py). Nothing else acks a delivery.

First attempts are made by the fan-out itself, straight from the event
(:meth:`Attempts.first_attempts`): a healthy delivery costs one HTTP request
and no broker round trip. Only a delivery that failed, or whose endpoint was
busy, goes through RabbitMQ, and comes back on the retries queue
(:meth:`Attempts.run`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any
from urllib.parse import urlsplit

from producer.event import unix_time
from workers.broker.rabbitmq import HooklineBroker
from workers.errors import BlockedAddress, CircuitOpen, DeliveryFailed
from workers.observability import metrics
from workers.observability.logs import get_logger
from workers.outbound import isolation, webhook
from workers.outbound.signing import secret_key
from workers.pipeline import deadletters, delivery
from workers.pipeline import waiting as delays
from workers.pipeline.retry_policy import GiveUp, RetryPolicy
from workers.pipeline.sparethreads import SpareThreads
from workers.runtime import Runtime
from workers.subscriptions.autodisable import SubscriptionHealth
from workers.subscriptions.store import Subscription

log = get_logger(component="deliver")

# What a delivery's settling handed on to a delay queue: the message that carried it is acked
# only once each of these succeeded (workers/heldacks.py).
Held = list[Future[None]]

# How long a delivery to an endpoint at its in-flight cap waits in RabbitMQ before it is offered
# again: a second if the endpoint is answering (busy), HOOKLINE_HTTP_TIMEOUT if it is not (stalled:
# that is the soonest a hanging request frees its slot). Doubling each time, up to five minutes.
BUSY_WAIT_SECONDS = 1.0
DEFER_MAX_SECONDS = 300.0


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

    def first_attempts(
        self, pairs: Sequence[tuple[delivery.Delivery, Subscription]], spare: SpareThreads
    ) -> Held:
        """First attempts for one event's deliveries; returns once each one is settled or handed on.

        What was handed on to a delay queue is returned: the event's ack must wait for it.
        """
        return side_by_side(spare, [partial(self.first, item, subscription) for item, subscription in pairs])

    def first(self, item: delivery.Delivery, subscription: Subscription, held: Held) -> None:
        self.admit(item, subscription, time.time(), log_for(item), held)

    def run_all(self, items: Sequence[delivery.Delivery], spare: SpareThreads) -> Held:
        """:meth:`run` for each delivery of one message; what was handed on is returned, as above."""
        return side_by_side(spare, [partial(self.run, item) for item in items])

    def run(self, item: delivery.Delivery, held: Held) -> None:
        """An attempt for a delivery that came back from RabbitMQ (a retry, a deferral or a replay)."""
        now = time.time()
        if self.runtime.stopping.is_set():
            # A batch holds up to 50 deliveries: the worker stops after this message, not after
            # attempting all of them. Not an attempt: back in a second, for another worker.
            self.wait(replace(item, not_before=now), now, held)
            return
        if not delays.is_due(item.not_before, now):
            self.wait(item, now, held)  # came back from a hop early: keep waiting
            return
        bound = log_for(item)
        subscription = self.deliverable(item, now, bound)
        if subscription is not None:
            self.admit(item, subscription, now, bound, held)

    def wait(self, item: delivery.Delivery, now: float, held: Held) -> None:
        held.append(delays.wait_in_broker(self.runtime.delay_batcher, self.runtime.topology, item, now))

    def admit(
        self, item: delivery.Delivery, subscription: Subscription, now: float, bound: Any, held: Held
    ) -> None:
        """Attempt now, unless the endpoint is at its cap (defer) or its breaker is open (fail fast)."""
        bound = bound.bind(host=host_of(subscription.url))
        endpoint = isolation.endpoint_of(subscription.url)
        refusal = self.endpoints.enter(endpoint, wait=self.runtime.settings.endpoint_busy_wait)
        if refusal in (isolation.BUSY, isolation.STALLED):
            self.defer(item, refusal, now, bound, held)
        elif refusal == isolation.OPEN:
            failure = CircuitOpen("circuit breaker open", retry_after=self.endpoints.reopens_in(endpoint))
            metrics.attempt_finished(failure.reason, 0)
            self.health.failed(subscription, failure, datetime.now(UTC))
            self.settle_failure(item, failure, attempted_at=now, duration=0, log=bound, held=held)
        else:
            self.attempt(item, subscription, endpoint, now, bound, held=held)

    def defer(self, item: delivery.Delivery, refusal: str, now: float, bound: Any, held: Held) -> None:
        # Not an attempt: the endpoint is slow, not failing. Wait in RabbitMQ, not on a thread, and
        # longer each time, so a large backlog for one slow endpoint does not churn through the broker.
        first = BUSY_WAIT_SECONDS if refusal == isolation.BUSY else self.runtime.settings.http_timeout
        wait = min(first * 2**item.deferrals, max(first, DEFER_MAX_SECONDS))
        later = replace(item, not_before=now + wait, deferrals=item.deferrals + 1)
        self.wait(later, now, held)
        metrics.deferred()
        bound.debug("delivery_deferred", reason=refusal, wait=wait)

    def deliverable(self, item: delivery.Delivery, now: float, bound: Any) -> Subscription | None:
        """The subscription to deliver to, or None once the delivery was skipped or parked."""
        subscription = self.runtime.subscriptions.get(item.subscription_id)
        if subscription is None:
            bound.info("delivery_skipped", reason="subscription_removed")  # nowhere left to deliver it
            self.finished(item, "skipped", attempts=item.attempt - 1)
            return None
        if not subscription.enabled:
            # Kept, not dropped: once the subscription is enabled again, `hookline dlq replay` sends it.
            dead = deadletters.DeadLetter.of(item, "disabled", now, attempts=item.attempt - 1)
            deadletters.park_delivery(self.broker, dead, self.retention_ms)
            metrics.dead_lettered("disabled")
            self.finished(item, "dead_lettered", attempts=item.attempt - 1)
            bound.info("delivery_dead_lettered", cause="disabled", dead_letter=dead.id)
            return None
        return subscription

    def attempt(
        self,
        item: delivery.Delivery,
        subscription: Subscription,
        endpoint: str,
        now: float,
        bound: Any,
        *,
        held: Held,
    ) -> None:
        keys = [secret_key(secret) for secret in subscription.active_secrets(datetime.now(UTC))]
        started = time.monotonic()
        failure: DeliveryFailed | None = None
        try:
            with metrics.in_flight():
                response = webhook.send(
                    self.runtime.http_client,
                    subscription.url,
                    keys,
                    item.event_id,
                    item.payload,
                    timeout=self.runtime.settings.http_timeout,
                )
        except DeliveryFailed as exc:
            failure = exc
        finally:
            self.breaker_changed(endpoint, self.endpoints.leave(endpoint, failure), bound)
        duration = time.monotonic() - started
        if failure is not None:
            metrics.attempt_finished(result_of(failure), duration)
            self.health.failed(subscription, failure, datetime.now(UTC))
            self.settle_failure(item, failure, attempted_at=now, duration=duration, log=bound, held=held)
            return
        metrics.attempt_finished(status_class(response.status), duration)
        self.health.succeeded(subscription)
        self.finished(
            item, "delivered", attempts=item.attempt, latency=time.time() - unix_time(item.event_timestamp)
        )
        bound.info("delivered", status=response.status, duration=round(response.duration, 4))

    def breaker_changed(self, endpoint: str, change: str | None, bound: Any) -> None:
        if change is None:
            return
        metrics.set_breakers_open(self.endpoints.open_breakers())
        if change == isolation.OPENED:
            bound.warning("circuit_opened", endpoint=endpoint)
        else:
            bound.info("circuit_closed", endpoint=endpoint)

    def finished(
        self, item: delivery.Delivery, outcome: str, *, attempts: int, latency: float | None = None
    ) -> None:
        metrics.delivery_finished(
            outcome, attempts=attempts, latency=latency, subscription_id=item.subscription_id
        )

    def settle_failure(
        self,
        item: delivery.Delivery,
        failure: DeliveryFailed,
        *,
        attempted_at: float,
        duration: float,
        log: Any,
        held: Held,
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
            metrics.dead_lettered(decision.cause)
            outcome = "blocked" if isinstance(failure, BlockedAddress) else "dead_lettered"
            self.finished(item, outcome, attempts=item.attempt)
            failed_log.warning(
                "delivery_dead_lettered", error=str(failure), cause=decision.cause, dead_letter=dead.id
            )
            return
        retry = item.failed(failure, attempted_at=attempted_at, retry_at=decision.at)
        self.wait(retry, now, held)
        metrics.retry_scheduled(failure.reason)
        failed_log.warning("delivery_failed", error=str(failure), retry_in=round(decision.at - now, 3))


def side_by_side(spare: SpareThreads, tasks: Sequence[Callable[[Held], None]]) -> Held:
    """Run ``tasks`` side by side; return once each is done, with what they handed on.

    Each task but the last is offered to a spare thread, so a slow endpoint
    holds up only its own delivery, not the others; what no idle spare thread
    takes, and the last one, run on the calling thread.
    """
    held: Held = []  # list.append is atomic: the tasks share it
    offered: list[Future[None]] = []
    for task in tasks[:-1]:
        future = spare.offer(task, held)
        if future is None:
            task(held)
        else:
            offered.append(future)
    try:
        tasks[-1](held)
    finally:
        wait(offered)  # all settled before any error surfaces: none is left running unowned
    for future in offered:
        future.result()  # re-raises: FailOnError then keeps the message instead of acking it
    return held


def log_for(item: delivery.Delivery) -> Any:
    """The logger for one attempt: every line names the event, the subscription and the attempt."""
    return log.bind(event_id=item.event_id, subscription_id=item.subscription_id, attempt=item.attempt)


def result_of(failure: DeliveryFailed) -> str:
    """The attempt's result label: the status class when the endpoint answered, else the reason."""
    return status_class(failure.status) if failure.status is not None else failure.reason


def status_class(status: int) -> str:
    return f"{status // 100}xx"


@lru_cache(maxsize=4096)  # called per attempt; a process sees few distinct URLs
def host_of(url: str) -> str | None:
    """The URL's host, the only part of it that logs show (a path or query may carry a token)."""
    return urlsplit(url).hostname
