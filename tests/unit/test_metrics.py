"""The metrics API the actors call: counted in-process, labels bounded, safe from many threads."""

from __future__ import annotations

import threading
import typing
from collections.abc import Iterator
from enum import StrEnum

import pytest

from producer.settings import load
from workers.observability import metrics
from workers.settings import Settings
from workers.vocabulary import (
    Cause,
    DeliveryOutcome,
    DisabledReason,
    EventOutcome,
    Reason,
    Rejection,
    StatusClass,
)

SUBSCRIPTION = "sub_abcdefghijklmnopqrst"

DELIVERED, DEAD_LETTERED, SKIPPED = (
    DeliveryOutcome.DELIVERED,
    DeliveryOutcome.DEAD_LETTERED,
    DeliveryOutcome.SKIPPED,
)


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def default_configuration() -> Iterator[None]:
    metrics.configure(load(Settings))
    yield
    metrics.configure(load(Settings))


def test_events_are_counted_by_outcome_and_type() -> None:
    before = value("hookline_events_received_total", outcome="fanned_out", event_type="order.created")
    metrics.event_received(EventOutcome.FANNED_OUT, "order.created")
    metrics.event_received(EventOutcome.FANNED_OUT, "order.created")
    metrics.event_received(EventOutcome.NO_SUBSCRIBERS, "order.created")
    after = value("hookline_events_received_total", outcome="fanned_out", event_type="order.created")
    assert after - before == 2
    assert value("hookline_events_received_total", outcome="no_subscribers", event_type="order.created") >= 1


def test_event_types_beyond_the_cap_are_counted_as_other() -> None:
    metrics.configure(Settings(metrics_event_types_max=2))
    for event_type in ("a.one", "a.two", "a.three", "a.four", "a.one"):
        metrics.event_received(EventOutcome.FANNED_OUT, event_type)
    assert value("hookline_events_received_total", outcome="fanned_out", event_type="a.one") == 2
    assert value("hookline_events_received_total", outcome="fanned_out", event_type="a.two") == 1
    assert value("hookline_events_received_total", outcome="fanned_out", event_type="a.three") == 0
    assert value("hookline_events_received_total", outcome="fanned_out", event_type="other") == 2


def test_invalid_events_never_carry_their_type_as_a_label() -> None:
    before = value("hookline_events_received_total", outcome="invalid", event_type="")
    metrics.event_received(EventOutcome.INVALID, "what.ever.the.routing.key.said")
    metrics.event_received(EventOutcome.INVALID, None)
    assert value("hookline_events_received_total", outcome="invalid", event_type="") - before == 2
    assert (
        value(
            "hookline_events_received_total", outcome="invalid", event_type="what.ever.the.routing.key.said"
        )
        == 0
    )


def test_attempts_are_counted_by_result_and_timed() -> None:
    answered = value("hookline_delivery_attempts_total", result="2xx")
    timed_out = value("hookline_delivery_attempts_total", result="timeout")
    timed = value("hookline_delivery_attempt_duration_seconds_count")
    fast = value("hookline_delivery_attempt_duration_seconds_bucket", le="0.05")
    metrics.attempt_finished(StatusClass.SUCCESS, 0.03)
    metrics.attempt_finished(Reason.TIMEOUT, 15.0)
    assert value("hookline_delivery_attempts_total", result="2xx") - answered == 1
    assert value("hookline_delivery_attempts_total", result="timeout") - timed_out == 1
    assert value("hookline_delivery_attempt_duration_seconds_count") - timed == 2
    assert value("hookline_delivery_attempt_duration_seconds_bucket", le="0.05") - fast == 1


def test_a_delivered_delivery_records_its_latency_and_attempts() -> None:
    delivered = value("hookline_deliveries_total", outcome="delivered")
    within_15_minutes = value("hookline_delivery_latency_seconds_bucket", le="900.0")
    under_five_minutes = value("hookline_delivery_latency_seconds_bucket", le="300.0")
    third_attempt = value("hookline_attempts_per_delivery_bucket", le="3.0")
    second_attempt = value("hookline_attempts_per_delivery_bucket", le="2.0")
    metrics.delivery_finished(DELIVERED, attempts=3, latency=305.0, subscription_id=SUBSCRIPTION)
    assert value("hookline_deliveries_total", outcome="delivered") - delivered == 1
    assert value("hookline_delivery_latency_seconds_bucket", le="900.0") - within_15_minutes == 1
    assert value("hookline_delivery_latency_seconds_bucket", le="300.0") == under_five_minutes
    assert value("hookline_attempts_per_delivery_bucket", le="3.0") - third_attempt == 1
    assert value("hookline_attempts_per_delivery_bucket", le="2.0") == second_attempt


def test_latency_is_observed_for_delivered_deliveries_only() -> None:
    count = value("hookline_delivery_latency_seconds_count")
    metrics.delivery_finished(DEAD_LETTERED, attempts=8, latency=99000.0, subscription_id=SUBSCRIPTION)
    metrics.delivery_finished(SKIPPED, attempts=0, latency=None, subscription_id=SUBSCRIPTION)
    assert value("hookline_delivery_latency_seconds_count") == count
    assert value("hookline_deliveries_total", outcome="skipped") >= 1


def test_an_event_timestamp_from_the_future_counts_as_zero_latency() -> None:
    fastest = value("hookline_delivery_latency_seconds_bucket", le="0.01")
    metrics.delivery_finished(DELIVERED, attempts=1, latency=-4.0, subscription_id=SUBSCRIPTION)
    assert value("hookline_delivery_latency_seconds_bucket", le="0.01") - fastest == 1


def test_subscription_ids_are_labels_only_in_the_per_subscription_mode() -> None:
    metrics.delivery_finished(DELIVERED, attempts=1, latency=0.2, subscription_id=SUBSCRIPTION)
    assert value("hookline_deliveries_total", outcome="delivered", subscription_id=SUBSCRIPTION) == 0

    metrics.configure(Settings(metrics_per_subscription=True))
    metrics.delivery_finished(DELIVERED, attempts=1, latency=0.2, subscription_id=SUBSCRIPTION)
    metrics.delivery_finished(DELIVERED, attempts=1, latency=0.2, subscription_id="not an id")
    assert value("hookline_deliveries_total", outcome="delivered", subscription_id=SUBSCRIPTION) == 1
    assert value("hookline_delivery_latency_seconds_count", subscription_id=SUBSCRIPTION) == 1
    assert value("hookline_deliveries_total", outcome="delivered", subscription_id="other") == 1


def test_dead_letters_are_counted_by_reason() -> None:
    before = {
        reason: value("hookline_dead_letters_total", reason=reason) for reason in ("exhausted", "crashed")
    }
    metrics.dead_lettered(Cause.EXHAUSTED)
    metrics.dead_lettered(Cause.EXHAUSTED)
    metrics.dead_lettered(Rejection.CRASHED)
    assert value("hookline_dead_letters_total", reason="exhausted") - before["exhausted"] == 2
    assert value("hookline_dead_letters_total", reason="crashed") - before["crashed"] == 1


def test_retries_deferrals_and_automatic_disables_are_counted() -> None:
    retries = value("hookline_retries_total", reason="timeout")
    deferrals = value("hookline_deliveries_deferred_total")
    disables = value("hookline_subscriptions_disabled_total", reason="gone")
    metrics.retry_scheduled(Reason.TIMEOUT)
    metrics.deferred()
    metrics.subscription_disabled(DisabledReason.GONE)
    assert value("hookline_retries_total", reason="timeout") - retries == 1
    assert value("hookline_deliveries_deferred_total") - deferrals == 1
    assert value("hookline_subscriptions_disabled_total", reason="gone") - disables == 1


def test_in_flight_counts_attempts_while_they_run_even_when_they_raise() -> None:
    with metrics.in_flight():
        assert value("hookline_deliveries_in_flight") == 1
        with metrics.in_flight():
            assert value("hookline_deliveries_in_flight") == 2
    with pytest.raises(TimeoutError), metrics.in_flight():
        raise TimeoutError
    assert value("hookline_deliveries_in_flight") == 0


def test_breakers_open_is_the_count_last_set() -> None:
    metrics.set_breakers_open(3)
    metrics.set_breakers_open(1)
    assert value("hookline_circuit_breakers_open") == 1


def test_every_label_a_metric_function_takes_is_one_of_a_closed_set_of_words() -> None:
    # Outcomes, causes and reasons come from code as enums: a message or a URL cannot become a label.
    labelled = ["event_received", "attempt_finished", "delivery_finished", "retry_scheduled"]
    labelled += ["dead_lettered", "subscription_disabled"]
    for name in labelled:
        hints = typing.get_type_hints(getattr(metrics, name))
        label = next(iter(hints.values()))  # the first parameter is the label
        kinds = typing.get_args(label) or (label,)
        assert all(issubclass(kind, StrEnum) for kind in kinds), (name, label)


def test_counts_from_many_threads_add_up_exactly() -> None:
    before = value("hookline_delivery_attempts_total", result="5xx")

    def attempt_often() -> None:
        for _ in range(2000):
            metrics.attempt_finished(StatusClass.SERVER_ERROR, 0.01)

    threads = [threading.Thread(target=attempt_often) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert value("hookline_delivery_attempts_total", result="5xx") - before == 16000
