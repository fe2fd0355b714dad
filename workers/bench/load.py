"""Publishing a run's events through the real producer: as fast as possible, or at a given rate.

Events are created in small batches just before they are published, so an
event's timestamp (from which latency is measured) is close to its publish
time. Timestamps carry microseconds (RFC 3339 allows any fraction, and the
contract accepts it) so that latencies of a few milliseconds are not rounded
by a whole millisecond.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from producer.event import Event, new_event_id
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from workers.errors import BenchError

BATCH = 500  # events per publish_many as fast as possible: keeps the confirm pipeline full
TICK = 0.05  # seconds between batches at a given rate


@dataclass(frozen=True)
class Published:
    events: int
    failed: int
    started: float  # wall time of the first publish
    finished: float  # wall time the last confirm arrived
    first_error: str | None = None

    @property
    def rate(self) -> float:
        """Events confirmed per second."""
        return (self.events - self.failed) / max(self.finished - self.started, 1e-9)


def precise_timestamp(moment: float) -> str:
    """RFC 3339 in UTC with microseconds, e.g. ``2024-05-01T12:00:00.123456Z``."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def make_events(event_type: str, first: int, count: int) -> list[Event]:
    now = precise_timestamp(time.time())
    return [Event(new_event_id(), event_type, now, {"n": n}) for n in range(first, first + count)]


def publish(
    settings: ProducerSettings,
    event_type: str,
    count: int,
    *,
    rate: float | None,
    on_published: Callable[[int], None],
) -> Published:
    """Publish ``count`` events of ``event_type`` with confirms; :class:`BenchError` if none got through."""
    failed = 0
    first_error: str | None = None
    with Publisher(settings) as publisher:
        started = time.time()
        for index, batch in enumerate(batches(event_type, count, rate)):
            failures = publisher.publish_many(batch, on_confirmed=on_published)
            if failures and index == 0 and len(failures) == len(batch):
                # Not one event of the first batch: the broker refuses them all (no exchange, ...).
                raise BenchError(f"events cannot be published: {failures[0][1]}")
            if failures:
                failed += len(failures)
                first_error = first_error or str(failures[0][1])
                on_published(len(failures))
        finished = time.time()
    return Published(count, failed, started, finished, first_error)


def batches(event_type: str, count: int, rate: float | None) -> Iterator[list[Event]]:
    """The events in batches, each made when it is due: at once, or ``rate`` per second."""
    if rate is None:
        for first in range(0, count, BATCH):
            yield make_events(event_type, first, min(BATCH, count - first))
        return
    start = time.monotonic()
    sent = 0
    while True:
        # Due by the clock, not by ticks counted: a late tick catches up instead of lowering the rate.
        due = min(count, math.floor(rate * (time.monotonic() - start)) + 1)
        if due > sent:
            yield make_events(event_type, sent, due - sent)
            sent = due
            if sent == count:
                return
        time.sleep(TICK)
