"""hookline's own metrics: what the actors record, cheap and thread-safe enough for the hot path.

Each function is a few dictionary look-ups and a locked add; none needs a
server. Without ``PROMETHEUS_MULTIPROC_DIR`` they count in :data:`REGISTRY`, in
this process (what unit tests read). Under ``hookline worker`` that variable is
set before the worker processes start, so each process writes its values to its
own memory-mapped files there and the parent's ``/metrics`` adds them up (see
:mod:`workers.ops.exporter`). docs/metrics.md lists every series.

This module imports prometheus_client, which picks its value class (in
process, or multiprocess files) once, when first imported: ``hookline worker``
sets the variable before anything imports this module (``tests/unit/test_layers.py``
checks that the parent does not).

Labels stay bounded: outcomes, causes and reasons are the enums of
:mod:`workers.vocabulary`, event types are labelled only up to
``HOOKLINE_METRICS_EVENT_TYPES_MAX`` distinct types per process, and
subscription ids only in the opt-in per-subscription mode.

``hookline recorder`` is one process with series of its own: they live in a
registry of their own (:func:`recorder_registry`), which only its ``/metrics``
serves, and are created only when it first asks for them: under ``hookline
worker``, creating one would already write it to the multiprocess files that
the worker's ``/metrics`` adds up.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess

from workers.settings import Settings
from workers.vocabulary import (
    Cause,
    DeliveryOutcome,
    DisabledReason,
    EventOutcome,
    Reason,
    RecordKind,
    Rejection,
    StatusClass,
)

REGISTRY = CollectorRegistry(auto_describe=True)
_RECORDER_REGISTRY = CollectorRegistry(auto_describe=True)

OTHER = "other"
DEFAULT_EVENT_TYPES_MAX = 50
_SUBSCRIPTION_ID = re.compile(r"sub_[a-z2-7]{20}")

# HTTP round trip of one attempt: 5 ms to a minute (HOOKLINE_HTTP_TIMEOUT is 15 s by default).
ATTEMPT_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 60)
# Event timestamp to successful delivery: 10 ms for a first attempt to 3 days (HOOKLINE_RETRY_MAX_AGE).
LATENCY_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    *(300, 900, 1800, 3600, 7200, 18000, 36000, 86400, 172800, 259200),
)
# Attempts a delivery took: the default schedule makes at most 8; HOOKLINE_RETRY_SCHEDULE allows 51.
ATTEMPTS_BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 30, 51)
# One transaction of the recorder: a few ms for a small batch, seconds for a large one on a busy database.
BATCH_WRITE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


@dataclass(frozen=True)
class _Metrics:
    """The metric objects; rebuilt by :func:`configure` when the per-subscription mode changes labels."""

    per_subscription: bool
    events_received: Counter
    deliveries: Counter
    attempts: Counter
    attempt_duration: Histogram
    latency: Histogram
    attempts_per_delivery: Histogram
    retries: Counter
    dead_letters: Counter
    deferred: Counter
    subscriptions_disabled: Counter
    in_flight: Gauge
    breakers_open: Gauge
    snapshot_age: Gauge


def _build(per_subscription: bool) -> _Metrics:
    by_subscription = ["subscription_id"] if per_subscription else []
    r = REGISTRY
    return _Metrics(
        per_subscription=per_subscription,
        events_received=Counter(
            "hookline_events_received",
            "Events taken off the events queue, by outcome and event type.",
            ["outcome", "event_type"],
            registry=r,
        ),
        deliveries=Counter(
            "hookline_deliveries",
            "Deliveries finished, by outcome.",
            ["outcome", *by_subscription],
            registry=r,
        ),
        attempts=Counter(
            "hookline_delivery_attempts",
            "Delivery attempts, by status class (2xx..5xx) or failure reason.",
            ["result"],
            registry=r,
        ),
        attempt_duration=Histogram(
            "hookline_delivery_attempt_duration_seconds",
            "HTTP round trip of one delivery attempt.",
            buckets=ATTEMPT_DURATION_BUCKETS,
            registry=r,
        ),
        latency=Histogram(
            "hookline_delivery_latency_seconds",
            "Time from the event's timestamp to its successful delivery.",
            by_subscription,
            buckets=LATENCY_BUCKETS,
            registry=r,
        ),
        attempts_per_delivery=Histogram(
            "hookline_attempts_per_delivery",
            "Attempts a finished delivery took.",
            buckets=ATTEMPTS_BUCKETS,
            registry=r,
        ),
        retries=Counter(
            "hookline_retries", "Failed attempts scheduled for a retry, by reason.", ["reason"], registry=r
        ),
        dead_letters=Counter(
            "hookline_dead_letters", "Messages parked as dead letters, by reason.", ["reason"], registry=r
        ),
        deferred=Counter(
            "hookline_deliveries_deferred",
            "Deliveries put back because their endpoint was at its in-flight cap.",
            registry=r,
        ),
        subscriptions_disabled=Counter(
            "hookline_subscriptions_disabled",
            "Subscriptions disabled automatically, by reason.",
            ["reason"],
            registry=r,
        ),
        in_flight=Gauge(
            "hookline_deliveries_in_flight",
            "HTTP delivery attempts in progress.",
            multiprocess_mode="livesum",
            registry=r,
        ),
        breakers_open=Gauge(
            "hookline_circuit_breakers_open",
            "Open circuit breakers, summed over worker processes (each process has its own).",
            multiprocess_mode="livesum",
            registry=r,
        ),
        snapshot_age=Gauge(
            "hookline_subscriptions_snapshot_age_seconds",
            "Seconds since the subscriptions a worker process matches events against were loaded; "
            "the oldest among the pod's processes.",
            multiprocess_mode="livemax",
            registry=r,
        ),
    )


class _EventTypes:
    """Admits the first ``limit`` distinct event types as label values; later ones become ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()
        self.lock = threading.Lock()

    def label(self, event_type: str) -> str:
        if event_type in self.seen:  # the common case, without the lock
            return event_type
        with self.lock:
            if len(self.seen) < self.limit:
                self.seen.add(event_type)
                return event_type
        return OTHER


_metrics = _build(per_subscription=False)
_event_types = _EventTypes(DEFAULT_EVENT_TYPES_MAX)
_configure_lock = threading.Lock()


def configure(settings: Settings) -> None:
    """Apply the label settings; call once per worker process, before it records anything."""
    global _metrics, _event_types  # noqa: PLW0603 - one process-wide set of metrics, swapped whole
    with _configure_lock:
        _event_types = _EventTypes(settings.metrics_event_types_max)
        if settings.metrics_per_subscription != _metrics.per_subscription:
            for collector in _collectors(_metrics):
                REGISTRY.unregister(collector)
            _metrics = _build(settings.metrics_per_subscription)


def event_received(outcome: EventOutcome, event_type: str | None) -> None:
    """One event taken off the events queue (an invalid one's type is never a label)."""
    invalid = outcome is EventOutcome.INVALID
    type_label = "" if invalid or event_type is None else _event_types.label(event_type)
    _metrics.events_received.labels(outcome, type_label).inc()


def attempt_finished(result: StatusClass | Reason, duration: float) -> None:
    """One HTTP request made: its status class when the endpoint answered, else the failure reason."""
    _metrics.attempts.labels(result).inc()
    _metrics.attempt_duration.observe(duration)


def delivery_finished(
    outcome: DeliveryOutcome, *, attempts: int, latency: float | None, subscription_id: str
) -> None:
    """A delivery is done.

    ``latency`` (event timestamp to success) is observed for ``delivered`` only; a
    timestamp from the future counts as zero.
    """
    metrics = _metrics
    by_subscription = [_subscription(subscription_id)] if metrics.per_subscription else []
    metrics.deliveries.labels(outcome, *by_subscription).inc()
    if attempts >= 1:
        metrics.attempts_per_delivery.observe(attempts)
    if outcome is DeliveryOutcome.DELIVERED and latency is not None:
        histogram = metrics.latency.labels(*by_subscription) if by_subscription else metrics.latency
        histogram.observe(max(latency, 0.0))


def retry_scheduled(reason: Reason) -> None:
    """A failed attempt that will be retried later."""
    _metrics.retries.labels(reason).inc()


def dead_lettered(reason: Cause | Rejection) -> None:
    """A delivery given up, or a message parked whole."""
    _metrics.dead_letters.labels(reason).inc()


def deferred() -> None:
    """A delivery put back because its endpoint was at its in-flight cap (not an attempt)."""
    _metrics.deferred.inc()


def subscription_disabled(reason: DisabledReason) -> None:
    """A subscription disabled automatically."""
    _metrics.subscriptions_disabled.labels(reason).inc()


@contextmanager
def in_flight() -> Iterator[None]:
    """Around one HTTP attempt: counts it in ``hookline_deliveries_in_flight`` while it runs."""
    gauge = _metrics.in_flight
    gauge.inc()
    try:
        yield
    finally:
        gauge.dec()


def subscriptions_snapshot_age(seconds: float) -> None:
    """How long ago this process's subscription snapshot was loaded (told after every reload attempt)."""
    _metrics.snapshot_age.set(seconds)


def set_breakers_open(count: int) -> None:
    """How many circuit breakers this process has open now."""
    _metrics.breakers_open.set(count)


@dataclass(frozen=True)
class _RecorderMetrics:
    records: Counter
    write_errors: Counter
    batch_duration: Histogram
    lag: Gauge
    parked: Counter


def _build_recorder() -> _RecorderMetrics:
    r = _RECORDER_REGISTRY
    return _RecorderMetrics(
        records=Counter(
            "hookline_recorder_records_written",
            "Delivery-log records the recorder wrote to the database, by kind.",
            ["kind"],
            registry=r,
        ),
        write_errors=Counter(
            "hookline_recorder_write_errors",
            "Writes of a batch of records that failed (each is tried again; nothing is acked meanwhile).",
            registry=r,
        ),
        batch_duration=Histogram(
            "hookline_recorder_batch_write_duration_seconds",
            "Time to write one batch of records in one transaction.",
            buckets=BATCH_WRITE_BUCKETS,
            registry=r,
        ),
        lag=Gauge(
            "hookline_recorder_lag_seconds",
            "Age of the oldest record the recorder holds unwritten (0 when it holds none).",
            registry=r,
        ),
        parked=Counter(
            "hookline_recorder_messages_parked",
            "Messages of the log queue the recorder could not read or write, parked in <prefix>.log.invalid.",
            registry=r,
        ),
    )


_recorder: _RecorderMetrics | None = None


def recorder_registry() -> CollectorRegistry:
    """The registry ``hookline recorder`` serves, its series created on the first call."""
    _recorder_metrics()
    return _RECORDER_REGISTRY


def _recorder_metrics() -> _RecorderMetrics:
    global _recorder  # noqa: PLW0603 - created once, on first use, never in a worker process
    with _configure_lock:
        if _recorder is None:
            _recorder = _build_recorder()
        return _recorder


def records_written(kinds: dict[RecordKind, int], duration: float) -> None:
    """A batch of records written in ``duration`` seconds, counted by kind."""
    recorder = _recorder_metrics()
    for kind, count in kinds.items():
        recorder.records.labels(kind).inc(count)
    recorder.batch_duration.observe(duration)


def record_write_failed() -> None:
    """A batch could not be written (the database is down, slow, or refused it)."""
    _recorder_metrics().write_errors.inc()


def recorder_lag(seconds: float) -> None:
    """Age of the oldest record the recorder holds unwritten; 0 when it holds none."""
    _recorder_metrics().lag.set(max(seconds, 0.0))


def log_message_parked() -> None:
    """A message of the log queue parked in ``<prefix>.log.invalid``."""
    _recorder_metrics().parked.inc()


def _subscription(subscription_id: str) -> str:
    return subscription_id if _SUBSCRIPTION_ID.fullmatch(subscription_id) else OTHER


def _collectors(metrics: _Metrics) -> list[Counter | Gauge | Histogram]:
    return [value for value in vars(metrics).values() if isinstance(value, Counter | Gauge | Histogram)]


def mark_process_dead(pid: int) -> None:
    """Drop a finished worker process's live gauges (in flight, breakers open) from the sums at once."""
    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call] # unannotated in prometheus_client
