"""Attempts: make one delivery attempt and settle its outcome.

An outcome is settled before the message that carried the delivery is acked:
delivered, dead-lettered (published, confirmed), or sent to wait in a delay
queue, for a retry or because its endpoint is busy. The last is batched
(workers/broker/delaybatch.py) and not waited for here: the futures are
returned and the ack waits for them (workers/broker/heldacks.py). Nothing else acks a delivery.
What happened is returned too, as records for the delivery log
(:mod:`workers.pipeline.journal`): every attempt, and every change of state
made without a request (deferred, skipped, parked).

First attempts are made by the fan-out itself, straight from the event
(:meth:`Attempts.first_attempts`): a healthy delivery costs one HTTP request
and no broker round trip. Only a delivery that failed, or whose endpoint was
busy, goes through RabbitMQ, and comes back on the retries queue
(:meth:`Attempts.run`).

Attempts takes what it uses as narrow interfaces (the protocols below, wired
to RabbitMQ, the database and the HTTP pool in :mod:`workers.app`), so it runs
in a unit test with fakes, without RabbitMQ.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Protocol
from urllib.parse import urlsplit

from structlog.typing import FilteringBoundLogger

from producer.event import unix_time
from workers.deliverylog.records import DeliveryState, Record
from workers.errors import BlockedAddress, CircuitOpen, DeliveryFailed
from workers.observability import metrics
from workers.observability.logs import get_logger
from workers.outbound import http, isolation
from workers.outbound.signing import secret_key
from workers.pipeline import deadletters, delivery, journal
from workers.pipeline import waiting as delays
from workers.pipeline.retry_policy import GiveUp, RetryPolicy
from workers.pipeline.sparethreads import SpareThreads
from workers.settings import Settings
from workers.subscriptions.store import Subscription
from workers.vocabulary import (
    BreakerChange,
    Cause,
    DeliveryOutcome,
    Reason,
    Refusal,
    SkipReason,
    StatusClass,
)

log = get_logger(component="deliver")


@dataclass(slots=True)
class Settled:
    """What settling one message's deliveries left behind, shared by the threads that settle them.

    ``held``: what was handed on to a delay queue; the message is acked only
    once each succeeded (workers/broker/heldacks.py). ``records``: what
    happened, for the delivery log. ``list.append`` is atomic: threads share them.
    """

    held: list[Future[None]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)


# How long a delivery to an endpoint at its in-flight cap waits in RabbitMQ before it is offered
# again: a second if the endpoint is answering (busy), HOOKLINE_HTTP_TIMEOUT if it is not (stalled:
# that is the soonest a hanging request frees its slot). Doubling each time, up to five minutes.
BUSY_WAIT_SECONDS = 1.0
DEFER_MAX_SECONDS = 300.0


class Subscriptions(Protocol):
    """Looks a subscription up by id: the process's subscription cache (workers/subscriptions/cache.py)."""

    def get(self, subscription_id: str) -> Subscription | None: ...


class SendWebhook(Protocol):
    """One signed POST: :func:`workers.outbound.webhook.send` with the process's HTTP pool and timeout.

    Returns the 2xx response or raises a :class:`~workers.errors.DeliveryFailed` subclass.
    """

    def __call__(
        self, url: str, keys: Sequence[bytes], webhook_id: str, payload: str, /
    ) -> http.Response: ...


class SendToWait(Protocol):
    """Hands a delivery to the delay queue for its next hop (:func:`workers.pipeline.waiting.wait_in_broker`).

    The future is done once RabbitMQ stored it; the message that carried the delivery is acked only then.
    """

    def __call__(self, item: delivery.Delivery, now: float, /) -> Future[None]: ...


class ParkDeadLetter(Protocol):
    """Parks a dead letter and returns once RabbitMQ confirmed it (:func:`deadletters.park_delivery`)."""

    def __call__(self, dead: deadletters.DeadLetter, /) -> None: ...


class Health(Protocol):
    """Automatic disabling: :class:`~workers.subscriptions.autodisable.SubscriptionHealth`."""

    def succeeded(self, subscription: Subscription) -> None: ...

    def failed(self, subscription: Subscription, failure: DeliveryFailed, now: datetime) -> None: ...


@dataclass(frozen=True, slots=True)
class Waits:
    """The settings an attempt reads itself (the HTTP timeout also bounds :class:`SendWebhook`)."""

    endpoint_busy_wait: float  # how long a delivery may wait for a slot at an endpoint making progress
    http_timeout: float  # the soonest a hanging request frees its slot: a stalled endpoint's first deferral

    @classmethod
    def from_settings(cls, settings: Settings) -> Waits:
        return cls(endpoint_busy_wait=settings.endpoint_busy_wait, http_timeout=settings.http_timeout)


@dataclass(frozen=True, kw_only=True, eq=False)
class Attempts:
    """Runs attempts and settles their outcomes: delivered, retry scheduled, or dead-lettered."""

    subscriptions: Subscriptions
    send_webhook: SendWebhook
    send_to_wait: SendToWait
    park: ParkDeadLetter
    health: Health
    policy: RetryPolicy
    endpoints: isolation.Endpoints
    # Set when the worker begins to shut down: what has not been attempted yet waits in RabbitMQ.
    stopping: threading.Event
    waits: Waits
    clock: Callable[[], float] = time.time  # wall-clock Unix seconds, as deliveries carry them

    def first_attempts(
        self,
        pairs: Sequence[tuple[delivery.Delivery, Subscription]],
        spare: SpareThreads,
        settled: Settled | None = None,
    ) -> Settled:
        """First attempts for one event's deliveries; returns once each one is settled or handed on.

        What was handed on to a delay queue, and what happened, are added to
        ``settled`` (a new one by default) and returned: the event's ack must
        wait for the first, and for the records to be stored.
        """
        tasks = [partial(self.first, item, subscription) for item, subscription in pairs]
        return side_by_side(spare, tasks, settled or Settled())

    def first(self, item: delivery.Delivery, subscription: Subscription, settled: Settled) -> None:
        self.admit(item, subscription, self.clock(), log_for(item), settled)

    def run_all(self, items: Sequence[delivery.Delivery], spare: SpareThreads) -> Settled:
        """:meth:`run` for each delivery of one message; what it left is returned, as above."""
        return side_by_side(spare, [partial(self.run, item) for item in items], Settled())

    def run(self, item: delivery.Delivery, settled: Settled) -> None:
        """An attempt for a delivery that came back from RabbitMQ (a retry, a deferral or a replay)."""
        now = self.clock()
        if self.stopping.is_set():
            # A batch holds up to 50 deliveries: the worker stops after this message, not after
            # attempting all of them. Not an attempt: back in a second, for another worker.
            self.wait(replace(item, not_before=now), now, settled)
            return
        if not delays.is_due(item.not_before, now):
            self.wait(item, now, settled)  # came back from a hop early: keep waiting
            return
        bound = log_for(item)
        subscription = self.deliverable(item, now, bound, settled)
        if subscription is not None:
            self.admit(item, subscription, now, bound, settled)

    def wait(self, item: delivery.Delivery, now: float, settled: Settled) -> None:
        settled.held.append(self.send_to_wait(item, now))

    def admit(
        self,
        item: delivery.Delivery,
        subscription: Subscription,
        now: float,
        bound: FilteringBoundLogger,
        settled: Settled,
    ) -> None:
        """Attempt now, unless the endpoint is at its cap (defer) or its breaker is open (fail fast)."""
        bound = bound.bind(host=host_of(subscription.url))
        endpoint = isolation.endpoint_of(subscription.url)
        refusal = self.endpoints.enter(endpoint, wait=self.waits.endpoint_busy_wait)
        if refusal is Refusal.ENDPOINT_BUSY or refusal is Refusal.ENDPOINT_STALLED:
            self.defer(item, refusal, now, bound, settled)
        elif refusal is Refusal.CIRCUIT_OPEN:
            # No request is made, so no attempt is counted (hookline_delivery_attempts_total counts
            # requests): it shows as a retry or a dead letter with reason circuit_open.
            failure = CircuitOpen("circuit breaker open", retry_after=self.endpoints.reopens_in(endpoint))
            self.health.failed(subscription, failure, self.utc_now())
            self.settle_failure(item, failure, attempted_at=now, duration=0, log=bound, settled=settled)
        else:
            self.attempt(item, subscription, endpoint, now, bound, settled=settled)

    def defer(
        self,
        item: delivery.Delivery,
        refusal: Refusal,
        now: float,
        bound: FilteringBoundLogger,
        settled: Settled,
    ) -> None:
        # Not an attempt: the endpoint is slow, not failing. Wait in RabbitMQ, not on a thread, and
        # longer each time, so a large backlog for one slow endpoint does not churn through the broker.
        first = BUSY_WAIT_SECONDS if refusal is Refusal.ENDPOINT_BUSY else self.waits.http_timeout
        wait = min(first * 2**item.deferrals, max(first, DEFER_MAX_SECONDS))
        later = replace(item, not_before=now + wait, deferrals=item.deferrals + 1)
        self.wait(later, now, settled)
        pending = journal.changed(
            item,
            DeliveryState.PENDING,
            at=now,
            reason=refusal,
            attempts=item.attempt - 1,
            next_attempt_at=now + wait,
        )
        settled.records.append(pending)
        metrics.deferred()
        bound.debug("delivery_deferred", reason=refusal, wait=wait)

    def deliverable(
        self, item: delivery.Delivery, now: float, bound: FilteringBoundLogger, settled: Settled
    ) -> Subscription | None:
        """The subscription to deliver to, or None once the delivery was skipped or parked."""
        subscription = self.subscriptions.get(item.subscription_id)
        attempts = item.attempt - 1
        if subscription is None:
            reason = SkipReason.SUBSCRIPTION_REMOVED
            bound.info("delivery_skipped", reason=reason)  # nowhere left to deliver it
            self.finished(item, DeliveryOutcome.SKIPPED, attempts=attempts)
            skipped = journal.changed(item, DeliveryState.SKIPPED, at=now, reason=reason, attempts=attempts)
            settled.records.append(skipped)
            return None
        if not subscription.enabled:
            # Kept, not dropped: once the subscription is enabled again, `hookline dlq replay` sends it.
            dead = deadletters.DeadLetter.of(item, Cause.DISABLED, now, attempts=attempts)
            self.park(dead)
            metrics.dead_lettered(Cause.DISABLED)
            self.finished(item, DeliveryOutcome.DEAD_LETTERED, attempts=attempts)
            parked = journal.changed(
                item, DeliveryState.DEAD_LETTERED, at=now, reason=Cause.DISABLED, attempts=attempts
            )
            settled.records.append(parked)
            bound.info("delivery_dead_lettered", cause=Cause.DISABLED, dead_letter=dead.id)
            return None
        return subscription

    def attempt(
        self,
        item: delivery.Delivery,
        subscription: Subscription,
        endpoint: str,
        now: float,
        bound: FilteringBoundLogger,
        *,
        settled: Settled,
    ) -> None:
        keys = [secret_key(secret) for secret in subscription.active_secrets(self.utc_now())]
        started = time.monotonic()
        failure: DeliveryFailed | None = None
        try:
            with metrics.in_flight():
                response = self.send_webhook(subscription.url, keys, item.event_id, item.payload)
        except DeliveryFailed as exc:
            failure = exc
        finally:
            self.breaker_changed(endpoint, self.endpoints.leave(endpoint, failure), bound)
        duration = time.monotonic() - started
        if failure is not None:
            metrics.attempt_finished(result_of(failure), duration)
            self.health.failed(subscription, failure, self.utc_now())
            self.settle_failure(
                item, failure, attempted_at=now, duration=duration, log=bound, settled=settled
            )
            return
        attempted = journal.delivered(
            item, started_at=now, duration=duration, status=response.status, body=response.body
        )
        settled.records.append(attempted)
        metrics.attempt_finished(StatusClass.of(response.status), duration)
        self.health.succeeded(subscription)
        latency = self.clock() - unix_time(item.event_timestamp)
        self.finished(item, DeliveryOutcome.DELIVERED, attempts=item.attempt, latency=latency)
        bound.info("delivered", status=response.status, duration=round(response.duration, 4))

    def utc_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def breaker_changed(
        self, endpoint: str, change: BreakerChange | None, bound: FilteringBoundLogger
    ) -> None:
        if change is None:
            return
        metrics.set_breakers_open(self.endpoints.open_breakers())
        if change is BreakerChange.OPENED:
            bound.warning("circuit_opened", endpoint=endpoint)
        else:
            bound.info("circuit_closed", endpoint=endpoint)

    def finished(
        self,
        item: delivery.Delivery,
        outcome: DeliveryOutcome,
        *,
        attempts: int,
        latency: float | None = None,
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
        log: FilteringBoundLogger,
        settled: Settled,
    ) -> None:
        first = item.first_attempt_at or attempted_at
        now = self.clock()
        decision = self.policy.decide(failure, attempt=item.attempt, first_attempt_at=first, now=now)
        failed_log = log.bind(reason=failure.reason, status=failure.status, duration=round(duration, 4))
        retry_at = None if isinstance(decision, GiveUp) else decision.at
        attempted = journal.failed(
            item, failure, started_at=attempted_at, duration=duration, retry_at=retry_at
        )
        settled.records.append(attempted)
        if isinstance(decision, GiveUp):
            dead = deadletters.DeadLetter.of(
                item.failed(failure, attempted_at=attempted_at, retry_at=None), decision.cause, now
            )
            self.park(dead)
            metrics.dead_lettered(decision.cause)
            blocked = isinstance(failure, BlockedAddress)
            outcome = DeliveryOutcome.BLOCKED if blocked else DeliveryOutcome.DEAD_LETTERED
            self.finished(item, outcome, attempts=item.attempt)
            failed_log.warning(
                "delivery_dead_lettered", error=str(failure), cause=decision.cause, dead_letter=dead.id
            )
            return
        retry = item.failed(failure, attempted_at=attempted_at, retry_at=decision.at)
        self.wait(retry, now, settled)
        metrics.retry_scheduled(failure.reason)
        failed_log.warning("delivery_failed", error=str(failure), retry_in=round(decision.at - now, 3))


def side_by_side(
    spare: SpareThreads, tasks: Sequence[Callable[[Settled], None]], settled: Settled
) -> Settled:
    """Run ``tasks`` side by side; return ``settled`` once each is done, with what they left in it.

    Each task but the last is offered to a spare thread, so a slow endpoint
    holds up only its own delivery, not the others; what no idle spare thread
    takes, and the last one, run on the calling thread.
    """
    offered: list[Future[None]] = []
    for task in tasks[:-1]:
        future = spare.offer(task, settled)
        if future is None:
            task(settled)
        else:
            offered.append(future)
    try:
        if tasks:
            tasks[-1](settled)
    finally:
        wait(offered)  # all settled before any error surfaces: none is left running unowned
    for future in offered:
        future.result()  # re-raises: FailOnError then keeps the message instead of acking it
    return settled


def log_for(item: delivery.Delivery) -> FilteringBoundLogger:
    """The logger for one attempt: every line names the event, the subscription and the attempt."""
    return log.bind(event_id=item.event_id, subscription_id=item.subscription_id, attempt=item.attempt)


def result_of(failure: DeliveryFailed) -> StatusClass | Reason:
    """The attempt's result label: the status class when the endpoint answered, else the reason."""
    return StatusClass.of(failure.status) if failure.status is not None else failure.reason


@lru_cache(maxsize=4096)  # called per attempt; a process sees few distinct URLs
def host_of(url: str) -> str | None:
    """The URL's host, the only part of it that logs show (a path or query may carry a token)."""
    return urlsplit(url).hostname
