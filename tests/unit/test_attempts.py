"""Attempts settle every delivery: delivered, sent to wait, or dead-lettered, never dropped on the way.

Each attempt, and each change of state made without a request, is also recorded for the delivery log.

Everything around an attempt is a fake for its narrow interface (the receiver,
the delay queues, the dead-letter queue, the subscription store and its health)
except the real per-endpoint guard and the real retry policy, on fake clocks.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from workers.deliverylog.records import (
    RESPONSE_BODY_BYTES,
    AttemptRecord,
    DeliveryState,
    StateRecord,
    delivery_id,
)
from workers.errors import CircuitOpen, ConnectFailure, DeliveryFailed, DeliveryTimeout, EndpointGone
from workers.observability import metrics
from workers.outbound import http, isolation, webhook
from workers.outbound.signing import generate_secret, secret_key
from workers.pipeline.attempts import BUSY_WAIT_SECONDS, DEFER_MAX_SECONDS, Attempts, Settled, Waits
from workers.pipeline.deadletters import DeadLetter
from workers.pipeline.delivery import Delivery
from workers.pipeline.retry_policy import RetryPolicy
from workers.pipeline.sparethreads import SpareThreads
from workers.subscriptions.store import Subscription
from workers.vocabulary import BreakerChange

NOW = 1_800_000_000.0  # wall clock, Unix seconds
URL = "https://hooks.example.test/in"
ENDPOINT = isolation.endpoint_of(URL)
SCHEDULE = (5.0, 60.0)  # so the third attempt is the last
HTTP_TIMEOUT = 15.0
COOLDOWN = 30.0


@dataclass
class Clock:
    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Receiver:
    """Answers each POST with the next status, as the real send would: a 2xx or a DeliveryFailed."""

    statuses: list[int] = field(default_factory=list)
    body: bytes = b""
    requests: list[tuple[str, Sequence[bytes], str, str]] = field(default_factory=list)

    def __call__(self, url: str, keys: Sequence[bytes], webhook_id: str, payload: str, /) -> http.Response:
        self.requests.append((url, keys, webhook_id, payload))
        response = http.Response(self.statuses.pop(0), self.body, 0.01, location=None, retry_after=None)
        webhook.check_status(response)
        return response


@dataclass
class DelayQueues:
    """Takes deliveries that must wait; their futures stay pending, as a batch not yet confirmed."""

    waiting: list[tuple[Delivery, float]] = field(default_factory=list)
    futures: list[Future[None]] = field(default_factory=list)

    def __call__(self, item: Delivery, now: float, /) -> Future[None]:
        self.waiting.append((item, now))
        self.futures.append(Future())
        return self.futures[-1]


@dataclass
class Health:
    successes: list[str] = field(default_factory=list)
    failures: list[tuple[str, DeliveryFailed]] = field(default_factory=list)

    def succeeded(self, subscription: Subscription) -> None:
        self.successes.append(subscription.id)

    def failed(self, subscription: Subscription, failure: DeliveryFailed, now: datetime) -> None:
        assert now == datetime.fromtimestamp(NOW, UTC)
        self.failures.append((subscription.id, failure))


def subscription(sub_id: str = "sub_a", *, enabled: bool = True) -> Subscription:
    created = datetime.fromtimestamp(NOW - 3600, UTC)
    return Subscription(sub_id, URL, ("#",), generate_secret(), None, None, enabled, "", created, created)


def delivery(sub_id: str = "sub_a", **changes: object) -> Delivery:
    timestamp = datetime.fromtimestamp(NOW - 1, UTC).isoformat()
    item = Delivery(sub_id, f"evt_{sub_id}", "order.created", timestamp, '{"type":"order.created"}')
    return replace(item, **changes)  # type: ignore[arg-type]


class World:
    """An Attempts wired to fakes, with the real endpoint guard and retry policy."""

    def __init__(self, *subscriptions: Subscription, busy_wait: float = 1.0) -> None:
        self.subscriptions = {sub.id: sub for sub in subscriptions}
        self.receiver = Receiver()
        self.delays = DelayQueues()
        self.parked: list[DeadLetter] = []
        self.health = Health()
        self.monotonic = Clock(1000.0)
        self.endpoints = isolation.Endpoints(
            max_in_flight=1, failure_threshold=2, cooldown=COOLDOWN, clock=self.monotonic
        )
        self.stopping = threading.Event()
        self.attempts = Attempts(
            subscriptions=self,
            send_webhook=self.receiver,
            send_to_wait=self.delays,
            park=self.parked.append,
            health=self.health,
            policy=RetryPolicy(
                SCHEDULE, jitter=0.0, max_age=86400.0, retry_after_max=3600.0, retry_client_errors=True
            ),
            endpoints=self.endpoints,
            stopping=self.stopping,
            waits=Waits(endpoint_busy_wait=busy_wait, http_timeout=HTTP_TIMEOUT),
            clock=lambda: NOW,
        )
        self.spare = SpareThreads(2, "test-spare")

    def get(self, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get(subscription_id)

    def run(self, *items: Delivery) -> Settled:
        """Deliveries back from RabbitMQ, as the retry actor gets them."""
        return self.attempts.run_all(items, self.spare)

    def first(self, *items: Delivery) -> Settled:
        """First attempts, as the fan-out makes them."""
        pairs = [(item, self.subscriptions[item.subscription_id]) for item in items]
        return self.attempts.first_attempts(pairs, self.spare)

    def hang_endpoint(self) -> None:
        """Its last request timed out (one failure: the breaker stays closed), another is in flight."""
        assert self.endpoints.enter(ENDPOINT) is None
        self.endpoints.leave(ENDPOINT, DeliveryTimeout("timed out"))
        assert self.endpoints.enter(ENDPOINT) is None

    def open_breaker(self, seconds_ago: float) -> None:
        """Two requests in a row were refused: the breaker opened ``seconds_ago``."""
        for change in (None, BreakerChange.OPENED):
            assert self.endpoints.enter(ENDPOINT) is None
            assert self.endpoints.leave(ENDPOINT, ConnectFailure("refused")) == change
        self.monotonic.now += seconds_ago


def test_a_first_attempt_that_succeeds_is_signed_with_the_subscription_secret_and_hands_nothing_on() -> None:
    sub = subscription()
    world = World(sub)
    world.receiver.statuses = [204]
    assert world.first(delivery()).held == []
    [(url, keys, webhook_id, _)] = world.receiver.requests
    assert (url, keys, webhook_id) == (URL, [secret_key(sub.secret)], "evt_sub_a")
    assert world.health.successes == ["sub_a"]
    assert world.delays.waiting == []
    assert world.parked == []


def test_a_failure_that_is_retried_is_sent_to_wait_with_the_next_attempt_and_its_due_time() -> None:
    world = World(subscription())
    world.receiver.statuses = [503]
    held = world.first(delivery())
    [(retry, now)] = world.delays.waiting
    assert now == NOW
    assert (retry.attempt, retry.not_before) == (2, NOW + SCHEDULE[0])
    assert (retry.first_attempt_at, retry.last_attempt_at, retry.last_status) == (NOW, NOW, 503)
    assert retry.last_reason == "http_status"
    assert held.held == world.delays.futures  # the message's ack waits until the retry is stored
    assert world.parked == []
    [(_, failure)] = world.health.failures
    assert failure.status == 503


def test_a_retry_that_fails_again_waits_the_next_delay_of_the_schedule() -> None:
    world = World(subscription())
    world.receiver.statuses = [500]
    world.run(delivery(attempt=2, first_attempt_at=NOW - 5, not_before=NOW))
    [(retry, _)] = world.delays.waiting
    assert (retry.attempt, retry.not_before, retry.first_attempt_at) == (3, NOW + SCHEDULE[1], NOW - 5)


def test_a_410_gone_is_dead_lettered_at_once_with_cause_permanent() -> None:
    world = World(subscription())
    world.receiver.statuses = [410]
    assert world.first(delivery()).held == []
    [dead] = world.parked
    assert (dead.cause, dead.attempts, dead.last_status, dead.event_id) == ("permanent", 1, 410, "evt_sub_a")
    assert world.delays.waiting == []
    [(_, failure)] = world.health.failures
    assert isinstance(failure, EndpointGone)  # what disables the subscription


def test_a_delivery_that_failed_every_attempt_of_the_schedule_is_dead_lettered_as_exhausted() -> None:
    world = World(subscription())
    world.receiver.statuses = [503]
    assert world.run(delivery(attempt=3, first_attempt_at=NOW - 65, not_before=NOW)).held == []
    [dead] = world.parked
    assert (dead.cause, dead.attempts, dead.last_status) == ("exhausted", 3, 503)
    assert dead.first_attempt_at == datetime.fromtimestamp(NOW - 65, UTC).isoformat()
    assert world.delays.waiting == []


@pytest.mark.parametrize(
    ("deferrals", "wait"),
    [(0, BUSY_WAIT_SECONDS), (1, 2 * BUSY_WAIT_SECONDS), (3, 8 * BUSY_WAIT_SECONDS), (20, DEFER_MAX_SECONDS)],
)
def test_a_delivery_to_an_endpoint_at_its_in_flight_cap_is_deferred_longer_each_time_without_an_attempt(
    deferrals: int, wait: float
) -> None:
    world = World(subscription())
    world.hang_endpoint()
    held = world.run(delivery(attempt=2, not_before=NOW - 1, deferrals=deferrals))
    [(later, _)] = world.delays.waiting
    assert (later.attempt, later.deferrals, later.not_before) == (2, deferrals + 1, NOW + wait)
    assert held.held == world.delays.futures
    assert world.receiver.requests == []
    assert world.health.failures == []  # not an attempt: the endpoint is slow, not failing


def test_a_delivery_to_a_stalled_endpoint_waits_the_http_timeout_before_it_is_offered_again() -> None:
    world = World(subscription())
    world.hang_endpoint()
    world.monotonic.now += 5.0  # nothing came back from it for longer than a delivery would wait
    world.first(delivery())
    [(later, _)] = world.delays.waiting
    assert (later.attempt, later.deferrals, later.not_before) == (1, 1, NOW + HTTP_TIMEOUT)
    assert world.receiver.requests == []


def test_an_open_breaker_fails_fast_without_a_request_and_retries_when_its_probe_is_due() -> None:
    world = World(subscription())
    world.open_breaker(seconds_ago=10.0)
    held = world.first(delivery())
    assert world.receiver.requests == []
    [(retry, _)] = world.delays.waiting
    # The schedule says 5 s, but the breaker lets a probe through only 20 s from now.
    assert (retry.attempt, retry.not_before, retry.last_reason) == (2, NOW + COOLDOWN - 10.0, "circuit_open")
    assert held.held == world.delays.futures
    [(_, failure)] = world.health.failures
    assert isinstance(failure, CircuitOpen)


def test_an_open_breaker_is_counted_as_a_retry_not_as_an_attempt() -> None:
    world = World(subscription())
    world.open_breaker(seconds_ago=10.0)
    attempts_before = sum_of("hookline_delivery_attempts_total")
    retries_before = (
        metrics.REGISTRY.get_sample_value("hookline_retries_total", {"reason": "circuit_open"}) or 0
    )
    world.first(delivery())
    assert sum_of("hookline_delivery_attempts_total") == attempts_before  # no request, no attempt
    retries = metrics.REGISTRY.get_sample_value("hookline_retries_total", {"reason": "circuit_open"})
    assert retries == retries_before + 1


def sum_of(name: str) -> float:
    return sum(
        sample.value
        for family in metrics.REGISTRY.collect()
        for sample in family.samples
        if sample.name == name
    )


def test_an_open_breaker_on_the_last_attempt_dead_letters_the_delivery_as_exhausted() -> None:
    world = World(subscription())
    world.open_breaker(seconds_ago=0.0)
    world.run(delivery(attempt=3, first_attempt_at=NOW - 65, not_before=NOW))
    [dead] = world.parked
    assert (dead.cause, dead.last_reason) == ("exhausted", "circuit_open")
    assert world.receiver.requests == []


def test_a_delivery_for_a_disabled_subscription_is_parked_with_cause_disabled_without_an_attempt() -> None:
    world = World(subscription(enabled=False))
    assert world.run(delivery(attempt=2, not_before=NOW, last_status=503)).held == []
    [dead] = world.parked
    assert (dead.cause, dead.attempts, dead.last_status) == ("disabled", 1, 503)
    assert world.receiver.requests == []
    assert world.delays.waiting == []


def test_a_delivery_for_a_removed_subscription_is_skipped() -> None:
    world = World()
    assert world.run(delivery("sub_gone", attempt=2, not_before=NOW)).held == []
    assert world.receiver.requests == []
    assert world.delays.waiting == []
    assert world.parked == []


def test_a_delivery_that_comes_back_before_it_is_due_keeps_waiting() -> None:
    world = World(subscription())
    early = delivery(attempt=2, not_before=NOW + 100.0)
    held = world.run(early)
    assert world.delays.waiting == [(early, NOW)]
    assert held.held == world.delays.futures
    assert held.records == []  # not an attempt, and no change of state
    assert world.receiver.requests == []


def test_a_stopping_worker_sends_each_delivery_of_a_batch_back_to_wait_without_attempting_it() -> None:
    subs = [subscription(f"sub_{name}") for name in "abc"]
    world = World(*subs)
    world.stopping.set()
    batch = [delivery(sub.id, attempt=2, not_before=NOW - 3) for sub in subs]
    held = world.run(*batch)
    assert sorted(world.delays.waiting, key=lambda pair: pair[0].subscription_id) == [
        (replace(item, not_before=NOW), NOW) for item in batch
    ]
    assert sorted(map(id, held.held)) == sorted(map(id, world.delays.futures))
    assert world.receiver.requests == []
    assert held.records == []


# -- what the delivery log is told -------------------------------------------------------------------


def attempt_records(settled: Settled) -> list[AttemptRecord]:
    return [record for record in settled.records if isinstance(record, AttemptRecord)]


def test_a_delivered_attempt_is_recorded_with_its_status_and_the_start_of_the_answer() -> None:
    world = World(subscription())
    world.receiver.statuses = [200]
    world.receiver.body = b"x" * (RESPONSE_BODY_BYTES + 100)
    [record] = world.first(delivery()).records
    assert isinstance(record, AttemptRecord)
    assert (record.event_id, record.subscription_id, record.run, record.attempt) == (
        "evt_sub_a",
        "sub_a",
        "",
        1,
    )
    assert (record.state, record.status, record.reason, record.started_at) == (
        DeliveryState.DELIVERED,
        200,
        None,
        NOW,
    )
    assert record.response_body == "x" * RESPONSE_BODY_BYTES
    assert record.id.endswith(".1")


def test_a_failed_attempt_is_recorded_as_retrying_with_its_next_time_and_what_the_endpoint_said() -> None:
    world = World(subscription())
    world.receiver.statuses = [503]
    world.receiver.body = b'{"error": "maintenance"}'
    [record] = attempt_records(world.first(delivery()))
    assert (record.state, record.next_attempt_at) == (DeliveryState.RETRYING, NOW + SCHEDULE[0])
    assert (record.status, record.reason, record.error) == (503, "http_status", "HTTP 503")
    assert record.response_body == '{"error": "maintenance"}'


def test_the_attempt_a_delivery_is_given_up_on_is_recorded_as_dead_lettered() -> None:
    world = World(subscription())
    world.receiver.statuses = [503]
    [record] = attempt_records(world.run(delivery(attempt=3, first_attempt_at=NOW - 65, not_before=NOW)))
    assert (record.attempt, record.state, record.next_attempt_at) == (3, DeliveryState.DEAD_LETTERED, None)


def test_an_open_breaker_is_recorded_as_an_attempt_refused_without_a_request() -> None:
    world = World(subscription())
    world.open_breaker(seconds_ago=10.0)
    [record] = attempt_records(world.first(delivery()))
    assert (record.status, record.reason, record.duration, record.response_body) == (
        None,
        "circuit_open",
        0,
        None,
    )
    assert record.state == DeliveryState.RETRYING


def test_a_deferred_delivery_is_recorded_as_pending_with_why_and_when_it_comes_back() -> None:
    world = World(subscription())
    world.hang_endpoint()
    [record] = world.run(delivery(attempt=2, not_before=NOW - 1)).records
    assert isinstance(record, StateRecord)
    assert (record.state, record.reason, record.attempts) == (DeliveryState.PENDING, "endpoint_busy", 1)
    assert record.next_attempt_at == NOW + BUSY_WAIT_SECONDS


def test_a_delivery_whose_subscription_was_removed_is_recorded_as_skipped() -> None:
    world = World()
    [record] = world.run(delivery("sub_gone", attempt=3, not_before=NOW)).records
    assert isinstance(record, StateRecord)
    assert (record.state, record.reason, record.attempts) == (
        DeliveryState.SKIPPED,
        "subscription_removed",
        2,
    )


def test_a_delivery_parked_because_its_subscription_is_disabled_is_recorded_as_dead_lettered() -> None:
    world = World(subscription(enabled=False))
    [record] = world.run(delivery(attempt=2, not_before=NOW)).records
    assert isinstance(record, StateRecord)
    assert (record.state, record.reason) == (DeliveryState.DEAD_LETTERED, "disabled")


def test_a_replayed_delivery_is_recorded_under_its_own_run_counting_attempts_from_one() -> None:
    world = World(subscription())
    world.receiver.statuses = [200]
    [record] = attempt_records(world.run(delivery(run="rp_1", not_before=NOW)))
    assert (record.run, record.attempt) == ("rp_1", 1)
    assert record.id == f"{delivery_id('evt_sub_a', 'sub_a', 'rp_1')}.1"
    assert record.id != f"{delivery_id('evt_sub_a', 'sub_a')}.1"  # the first run's attempt 1 stays


def test_each_delivery_of_an_event_is_recorded_by_the_thread_that_made_it_into_one_settlement() -> None:
    subs = [subscription(f"sub_{name}") for name in "abc"]
    world = World(*subs)
    world.endpoints = isolation.Endpoints(max_in_flight=10, failure_threshold=2, cooldown=COOLDOWN)
    world.attempts = replace(world.attempts, endpoints=world.endpoints)
    world.receiver.statuses = [200, 200, 200]
    settled = world.first(*(delivery(sub.id) for sub in subs))
    assert sorted(record.subscription_id for record in attempt_records(settled)) == [
        "sub_a",
        "sub_b",
        "sub_c",
    ]
