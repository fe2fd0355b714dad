"""The retry decision: wait per schedule with jitter, honour Retry-After, give up when it is time."""

from __future__ import annotations

import pytest

from workers.durations import format_duration, parse_duration
from workers.errors import (
    CircuitOpen,
    ClientErrorStatus,
    ConnectFailure,
    DeliveryTimeout,
    EndpointGone,
    RetryableHttpStatus,
)
from workers.outbound.webhook import parse_retry_after
from workers.pipeline.retry_policy import GiveUp, RetryAt, RetryPolicy
from workers.pipeline.waiting import is_due, next_hop
from workers.settings import DEFAULT_RETRY_SCHEDULE, Settings

NOW = 1_800_000_000.0


def policy(**overrides: object) -> RetryPolicy:
    values: dict[str, object] = {
        "schedule": (5.0, 300.0, 1800.0),
        "jitter": 0.0,
        "max_age": 86400.0,
        "retry_after_max": 3600.0,
        "retry_client_errors": True,
    }
    values.update(overrides)
    return RetryPolicy(**values)  # type: ignore[arg-type]


def test_the_default_schedule_follows_standard_webhooks_over_about_27_and_a_half_hours() -> None:
    assert Settings().retry_schedule == DEFAULT_RETRY_SCHEDULE
    assert sum(DEFAULT_RETRY_SCHEDULE) / 3600 == pytest.approx(27.5, abs=0.1)
    assert RetryPolicy.from_settings(Settings()).max_attempts == 8


def test_each_retryable_failure_waits_the_next_delay_of_the_schedule() -> None:
    for attempt, delay in enumerate((5.0, 300.0, 1800.0), start=1):
        decision = policy().decide(DeliveryTimeout("t"), attempt=attempt, first_attempt_at=NOW, now=NOW)
        assert decision == RetryAt(NOW + delay)


def test_after_the_last_delay_the_delivery_is_given_up_as_exhausted() -> None:
    decision = policy().decide(ConnectFailure("c"), attempt=4, first_attempt_at=NOW, now=NOW)
    assert decision == GiveUp("exhausted")


def test_jitter_spreads_waits_within_its_bounds() -> None:
    waits = {policy(jitter=0.2).wait(DeliveryTimeout("t"), 2) for _ in range(200)}
    assert min(waits) >= 240.0
    assert max(waits) <= 360.0
    assert max(waits) - min(waits) > 60.0


def test_410_gone_is_given_up_at_once() -> None:
    assert policy().decide(EndpointGone("g", status=410), attempt=1, first_attempt_at=NOW, now=NOW) == GiveUp(
        "permanent"
    )


def test_client_errors_are_retried_unless_configured_otherwise() -> None:
    failure = ClientErrorStatus("HTTP 404", status=404)
    assert isinstance(policy().decide(failure, attempt=1, first_attempt_at=NOW, now=NOW), RetryAt)
    assert policy(retry_client_errors=False).decide(
        failure, attempt=1, first_attempt_at=NOW, now=NOW
    ) == GiveUp("permanent")


def test_a_longer_retry_after_is_honoured_up_to_its_maximum() -> None:
    slow = RetryableHttpStatus("HTTP 429", status=429, retry_after=600.0)
    huge = RetryableHttpStatus("HTTP 429", status=429, retry_after=10 * 86400.0)
    short = RetryableHttpStatus("HTTP 503", status=503, retry_after=1.0)
    assert policy().wait(slow, 1) == 600.0
    assert policy().wait(huge, 1) == 3600.0
    assert policy().wait(short, 1) == 5.0


def test_a_retry_that_would_fall_past_the_maximum_age_is_given_up() -> None:
    decision = policy(max_age=1000.0).decide(
        DeliveryTimeout("t"), attempt=3, first_attempt_at=NOW - 100, now=NOW
    )
    assert decision == GiveUp("max_age")


@pytest.mark.parametrize(
    ("remaining", "hop"),
    [(0.3, 1), (1.0, 1), (1.9, 1), (2.0, 2), (5.0, 4), (300.0, 256), (36000.0, 32768), (10**6, 65536)],
)
def test_a_wait_hops_through_the_longest_delay_queue_that_does_not_overshoot(
    remaining: float, hop: int
) -> None:
    assert next_hop(remaining) == hop


def test_hopping_never_fires_early_and_at_most_about_a_second_late() -> None:
    for total in (0.5, 1.0, 5.0, 7.3, 300.0, 1800.0, 36000.0, 99000.0):
        waited = 0.0
        while not is_due(total, waited):
            waited += next_hop(total - waited)
        assert total - 0.05 <= waited <= total + 1.0


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480.0 - 60) == 60.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_durations_read_and_print_in_the_units_people_use() -> None:
    assert [parse_duration(text) for text in ("90", "5s", "5m", "2h", "3d", "1.5h")] == [
        90.0,
        5.0,
        300.0,
        7200.0,
        259200.0,
        5400.0,
    ]
    assert [format_duration(seconds) for seconds in (300, 90, 7200, 0.5)] == ["5m", "90s", "2h", "0.5s"]
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("5 minutes")


def test_a_delivery_refused_by_an_open_breaker_is_retried_once_the_breaker_lets_a_probe_through() -> None:
    policy = RetryPolicy(
        schedule=(5.0, 300.0), jitter=0.0, max_age=86400, retry_after_max=3600, retry_client_errors=True
    )
    decision = policy.decide(
        CircuitOpen("circuit breaker open", retry_after=42.0), attempt=1, first_attempt_at=1000.0, now=1000.0
    )
    assert decision == RetryAt(1042.0)
