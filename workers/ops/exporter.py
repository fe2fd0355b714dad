"""What the ``hookline worker`` parent exposes: the children's metrics, broker and database figures, health.

``/metrics`` is the sum of the worker processes' own series (prometheus_client's
multiprocess files, see :mod:`workers.metrics`) plus figures computed here at
scrape time: queue depths from the broker, subscriptions by state from the
database, and worker processes by heartbeat state. Broker and database reads
are cached for :data:`CACHE_SECONDS` (a failure too), so a scrape or a probe
costs at most one read per period, and an unreachable broker or database
shows as ``hookline_broker_up 0`` / ``hookline_database_up 0``, never as a
failed scrape.

Dead worker processes are swept on every scrape and probe: their live gauges
(in flight, breakers open) are dropped with ``mark_process_dead``; their
counters stay, as Prometheus counters must.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.broker.topology import Topology
from workers.errors import HooklineError
from workers.observability import heartbeat
from workers.ops.queue_stats import QueueReader, QueueStats
from workers.settings import Settings
from workers.subscriptions import db
from workers.subscriptions.store import SubscriptionStore
from workers.vocabulary import ProcessState

CACHE_SECONDS = 5.0
STALE_AFTER_SECONDS = 30.0  # fifteen missed heartbeats
STARTUP_GRACE_SECONDS = 60.0  # how long a process may take to write its first heartbeat
PROCESS_STATES = tuple(ProcessState)

T = TypeVar("T")


class Cached(Generic[T]):
    """The last outcome of ``read``, value or error, reused for ``seconds``; reads take turns."""

    def __init__(self, read: Callable[[], T], seconds: float = CACHE_SECONDS) -> None:
        self._read = read
        self._seconds = seconds
        self._lock = threading.Lock()
        self._at = -float("inf")
        self._value: T | None = None
        self._error: str | None = None

    def get(self) -> tuple[T | None, str | None]:
        with self._lock:
            if time.monotonic() - self._at >= self._seconds:
                try:
                    self._value, self._error = self._read(), None
                except HooklineError as exc:  # messages of these never carry a password
                    self._value, self._error = None, str(exc)
                self._at = time.monotonic()
            return self._value, self._error


@dataclass
class Supervision:
    """The worker processes as their heartbeats show them, with the dead ones swept away."""

    path: Path
    expected: int
    started_at: float = field(default_factory=time.monotonic)
    exited: set[int] = field(default_factory=set)  # died unasked: the pod is broken
    stopped: set[int] = field(default_factory=set)  # exited after saying it was stopping (SIGTERM)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def beats(self) -> list[heartbeat.Beat]:
        with self._lock:
            beats = []
            for beat in heartbeat.read_all(self.path):
                if _alive(beat.pid):
                    beats.append(beat)
                else:
                    self._sweep(beat)
            return beats

    def _sweep(self, beat: heartbeat.Beat) -> None:
        multiprocess.mark_process_dead(beat.pid, str(self.path.parent))  # type: ignore[no-untyped-call] # unannotated in prometheus_client
        heartbeat.forget(self.path, beat.pid)
        (self.stopped if beat.state is ProcessState.STOPPING else self.exited).add(beat.pid)

    def state_of(self, beat: heartbeat.Beat, now: float) -> ProcessState:
        return ProcessState.STALE if beat.age(now) > STALE_AFTER_SECONDS else beat.state

    def in_grace(self, now: float) -> bool:
        return now - self.started_at < STARTUP_GRACE_SECONDS


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


@dataclass(frozen=True)
class Health:
    live: bool
    ready: bool
    problems: list[str]
    processes: list[dict[str, object]]

    def body(self, ready: bool) -> dict[str, object]:
        ok = self.ready if ready else self.live
        status = "ok" if ok else "unavailable"
        return {"status": status, "problems": self.problems, "processes": self.processes}


def assess(supervision: Supervision, broker_error: str | None, now: float | None = None) -> Health:
    """Live: no process stale, stalled or exited unasked, and all there once the start-up grace is over.

    Ready: live, every expected process consuming, and the broker answering. A
    process that exits after SIGTERM (state ``stopping``) leaves the pod live
    but not ready while the others finish.
    """
    now = time.monotonic() if now is None else now
    beats = supervision.beats()
    states = {beat.pid: supervision.state_of(beat, now) for beat in beats}
    problems = [f"worker process {pid} exited" for pid in sorted(supervision.exited)]
    not_consuming = {pid: state for pid, state in states.items() if state is not ProcessState.CONSUMING}
    problems += [f"worker process {pid} is {state}" for pid, state in not_consuming.items()]
    missing = supervision.expected - len(beats) - len(supervision.exited) - len(supervision.stopped)
    if missing > 0:
        problems.append(f"{missing} of {supervision.expected} worker processes have not reported yet")
    hard = [state for state in states.values() if state in (ProcessState.STALE, ProcessState.THREAD_DIED)]
    live = not hard and not supervision.exited and (missing <= 0 or supervision.in_grace(now))
    consuming = sum(state is ProcessState.CONSUMING for state in states.values())
    ready = live and consuming >= supervision.expected and broker_error is None
    if broker_error is not None:
        problems.append(broker_error)
    processes: list[dict[str, object]] = [
        {"pid": beat.pid, "state": states[beat.pid], "heartbeat_age": round(beat.age(now), 3)}
        for beat in beats
    ]
    return Health(live, ready, problems, processes)


class WorkerCollector(Collector):
    def __init__(self, supervision: Supervision) -> None:
        self.supervision = supervision

    def collect(self) -> Iterator[Metric]:
        now = time.monotonic()
        counts = dict.fromkeys(PROCESS_STATES, 0)
        for beat in self.supervision.beats():
            counts[self.supervision.state_of(beat, now)] += 1
        processes = GaugeMetricFamily(
            "hookline_worker_processes", "Worker processes of this pod, by heartbeat state.", labels=["state"]
        )
        for state, count in counts.items():
            processes.add_metric([state], count)
        yield processes
        yield GaugeMetricFamily(
            "hookline_worker_processes_expected",
            "Worker processes this pod runs (hookline worker --processes).",
            value=self.supervision.expected,
        )


class BrokerCollector(Collector):
    def __init__(self, stats: Cached[QueueStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats, error = self.stats.get()
        yield GaugeMetricFamily(
            "hookline_broker_up", "Whether RabbitMQ answered the last queue read.", value=int(error is None)
        )
        messages = GaugeMetricFamily(
            "hookline_queue_messages", "Messages ready in hookline's queues, by role.", labels=["queue"]
        )
        consumers = GaugeMetricFamily(
            "hookline_queue_consumers", "Consumers of the actor queues, all pods together.", labels=["queue"]
        )
        if stats is not None:
            _add_all(messages, stats.messages.items())
            _add_all(consumers, stats.consumers.items())
        yield messages
        yield consumers


class SubscriptionCollector(Collector):
    def __init__(self, counts: Cached[dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        counts, error = self.counts.get()
        yield GaugeMetricFamily(
            "hookline_database_up", "Whether the subscription database answered.", value=int(error is None)
        )
        family = GaugeMetricFamily(
            "hookline_subscriptions", "Subscriptions by state (enabled or why disabled).", labels=["state"]
        )
        if counts is not None:
            _add_all(family, counts.items())
        yield family


def _add_all(family: GaugeMetricFamily, samples: Iterable[tuple[str, int]]) -> None:
    for label, value in samples:
        family.add_metric([label], value)


def subscription_counts(settings: Settings) -> Callable[[], dict[str, int]]:
    """A reader of subscription counts that holds no connection between reads (safe across fork)."""

    def read() -> dict[str, int]:
        engine = db.create_engine(settings.database_url)
        try:
            return SubscriptionStore(engine).count_by_state()
        finally:
            engine.dispose()

    return read


@dataclass
class Exposition:
    """Everything ``/metrics``, ``/healthz`` and ``/readyz`` answer from."""

    registry: CollectorRegistry
    supervision: Supervision
    queue_stats: Cached[QueueStats]
    reader: QueueReader

    def health(self) -> Health:
        _, broker_error = self.queue_stats.get()
        return assess(self.supervision, broker_error)

    def close(self) -> None:
        self.reader.close()


def build(settings: Settings, run_dir: Path, expected: int) -> Exposition:
    registry = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(registry, path=str(run_dir))  # type: ignore[no-untyped-call] # unannotated in prometheus_client
    supervision = Supervision(run_dir / heartbeat.SUBDIRECTORY, expected)
    reader = QueueReader(settings.amqp_url, Topology.from_settings(settings))
    queue_stats = Cached(reader.read)
    registry.register(WorkerCollector(supervision))
    registry.register(BrokerCollector(queue_stats))
    registry.register(SubscriptionCollector(Cached(subscription_counts(settings))))
    return Exposition(registry, supervision, queue_stats, reader)
