"""Replay from the delivery log: a subscription's stored events of a time range, delivered again.

The log names the candidates: per event of the subscription received in the
range, its latest run's delivery, if that delivery's state is one of those
asked for (:data:`SELECTIONS`: ``failed`` is retrying or dead-lettered). Each
becomes a fresh delivery of the same webhook (same ``webhook-id``, the stored
body, signed afresh at each attempt, attempts from 1) in a run of its own,
``rp_<uuid4 hex>``, so the log keeps its attempts beside the earlier ones.

Deliveries go to the retries queue for the ``retry`` actor, as many to a
message as the delay batches put in one (a confirm per delivery would make a
large replay wait a round trip for each), on a channel in confirm mode
(:func:`publish_for_retry`, which the dead-letter replay can share); each
counts as replayed once the broker confirmed its message. The log is then
told (a ``pending`` state record, reason ``replayed``), so it shows the
replay, and a second replay of the same range, once the recorder has written
the first, finds those events' latest runs pending or delivered and leaves
them alone. Anything sent twice reaches the receiver twice with the same
``webhook-id``, which receivers deduplicate.

A disabled subscription is refused (its deliveries would only become dead
letters), as is an unknown one. An event whose payload the log no longer keeps
(``HOOKLINE_LOG_PAYLOAD_RETENTION``) cannot be resent and is reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker import delaybatch
from workers.broker.topology import Topology
from workers.deliverylog import records
from workers.deliverylog.queries import ReplayCandidate
from workers.deliverylog.records import DeliveryState, StateRecord
from workers.deliverylog.store import LogStore
from workers.errors import ReplayError, RetryNotStored, SubscriptionNotFound, describe_cause
from workers.ops import queuereader
from workers.pipeline.delivery import Delivery, new_run
from workers.settings import Settings
from workers.subscriptions.store import SubscriptionStore

# What --state may ask for, and the delivery states each takes in.
SELECTIONS: dict[str, frozenset[DeliveryState]] = {
    "failed": frozenset({DeliveryState.RETRYING, DeliveryState.DEAD_LETTERED}),
    "dead": frozenset({DeliveryState.DEAD_LETTERED}),
    "skipped": frozenset({DeliveryState.SKIPPED}),
    "all": frozenset(DeliveryState),
}
REPLAYED = "replayed"  # the reason of the state record that shows a replay in the log
# State records per log message: one message per this many replays, a few dozen KiB.
LOG_BATCH = 200

# on_progress(done, total): deliveries published so far, out of how many.
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a replay would resend, read from the log before anything is sent."""

    subscription_id: str
    since: datetime
    until: datetime | None
    selection: str
    candidates: Sequence[ReplayCandidate]

    @property
    def sendable(self) -> list[ReplayCandidate]:
        return [candidate for candidate in self.candidates if candidate.payload is not None]

    @property
    def without_payload(self) -> list[ReplayCandidate]:
        return [candidate for candidate in self.candidates if candidate.payload is None]

    def to_record(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "since": self.since,
            "until": self.until,
            "state": self.selection,
            "to_send": [candidate_record(candidate) for candidate in self.sendable],
            "without_payload": [candidate.event_id for candidate in self.without_payload],
        }


def candidate_record(candidate: ReplayCandidate) -> dict[str, Any]:
    return {
        "event_id": candidate.event_id,
        "event_type": candidate.event_type,
        "received_at": candidate.received_at,
        "state": str(candidate.state),
    }


@dataclass(slots=True)
class Report:
    """What a replay sent: each event with the run it was given; what it could not send."""

    replayed: list[tuple[str, str]] = field(default_factory=list)  # (event id, run)
    without_payload: list[str] = field(default_factory=list)
    log_not_told: str | None = None  # why the log did not hear of the replays, if it did not

    def to_record(self) -> dict[str, Any]:
        return {
            "replayed": [{"event_id": event_id, "run": run} for event_id, run in self.replayed],
            "without_payload": self.without_payload,
            "log_not_told": self.log_not_told,
        }


def plan(
    subscriptions: SubscriptionStore,
    log: LogStore,
    subscription_id: str,
    *,
    since: datetime,
    until: datetime | None = None,
    selection: str = "failed",
) -> Plan:
    """Read what a replay would resend; ReplayError for a removed or disabled subscription."""
    if until is not None and until <= since:
        raise ReplayError("the range is empty: --until must be later than --since")
    try:
        subscription = subscriptions.get(subscription_id)
    except SubscriptionNotFound as exc:
        raise ReplayError(f"no subscription with id {subscription_id[:100]!r} (removed?)") from exc
    if not subscription.enabled:
        raise ReplayError(
            f"subscription {subscription_id} is disabled: its deliveries would become dead letters; "
            f"`hookline subscriptions resume {subscription_id} --replay` resumes it and replays"
        )
    candidates = log.replay_candidates(subscription_id, since, until, SELECTIONS[selection])
    return Plan(subscription_id, since, until, selection, candidates)


def replay(
    settings: Settings,
    planned: Plan,
    *,
    on_progress: Progress | None = None,
) -> Report:
    """Publish each sendable candidate as a fresh delivery, then tell the log; see the module docstring.

    A broker that does not confirm stops the replay with RetryNotStored, after
    telling the log of what was sent before it.
    """
    topology = Topology.from_settings(settings)
    report = Report(without_payload=[candidate.event_id for candidate in planned.without_payload])
    deliveries = [fresh_delivery(planned.subscription_id, each) for each in planned.sendable]
    told = _LogTeller(topology, settings.log_enabled)
    with queuereader.channel(settings.amqp_url, "retries queue") as channel:
        channel.confirm_delivery()
        try:
            for batch in batches(deliveries):
                # Stamped before the publish: the records must order before each run's first attempt.
                records_of_batch = [replayed_record(delivery, time.time()) for delivery in batch]
                try:
                    publish_for_retry(channel, topology.retries_queue, batch)
                except RetryNotStored as exc:
                    sent = f"{len(report.replayed)} of {len(deliveries)} replayed"
                    raise RetryNotStored(f"{sent}, then {batch[0].event_id} and on {exc}") from exc
                report.replayed += [(delivery.event_id, delivery.run) for delivery in batch]
                told.add(records_of_batch)
                told.flush_if_full(channel)
                if on_progress is not None:
                    on_progress(len(report.replayed), len(deliveries))
        finally:
            report.log_not_told = told.flush(channel)
    return report


def batches(deliveries: Sequence[Delivery]) -> Iterator[list[Delivery]]:
    """The deliveries in order, as many to a retries message as the delay batches put in one."""
    batch: list[Delivery] = []
    size = 0
    for delivery in deliveries:
        each = delaybatch.encoded_size(delivery.to_message())
        if batch and (len(batch) == delaybatch.MAX_DELIVERIES or size + each > delaybatch.MAX_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(delivery)
        size += each
    if batch:
        yield batch


def fresh_delivery(subscription_id: str, candidate: ReplayCandidate) -> Delivery:
    """A new delivery of the candidate's webhook, in a run of its own, from attempt 1."""
    assert candidate.payload is not None  # noqa: S101 - only sendable candidates come here; narrows for mypy
    return Delivery(
        subscription_id,
        candidate.event_id,
        candidate.event_type,
        candidate.event_timestamp,
        candidate.payload,
        run=new_run(),
    )


def replayed_record(delivery: Delivery, at: float) -> StateRecord:
    """What the log is told of a replayed delivery: pending, in its new run, none of its attempts made."""
    return StateRecord(
        event_id=delivery.event_id,
        subscription_id=delivery.subscription_id,
        run=delivery.run,
        state=DeliveryState.PENDING,
        at=at,
        attempts=0,
        reason=REPLAYED,
        next_attempt_at=None,
        event_type=delivery.event_type,
    )


def publish_for_retry(channel: BlockingChannel, retries_queue: str, deliveries: Sequence[Delivery]) -> None:
    """Publish deliveries for the ``retry`` actor, as one message, and return once the broker confirmed it.

    ``channel`` is in confirm mode. RetryNotStored if the queue does not exist
    or the broker refused the message.
    """
    body = delaybatch.retry_message(retries_queue, [delivery.to_message() for delivery in deliveries])
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    try:
        channel.basic_publish("", retries_queue, body, properties=properties, mandatory=True)
    except pika.exceptions.UnroutableError as exc:
        raise RetryNotStored(
            f"not confirmed: the broker has no queue {retries_queue} (run `hookline setup`)"
        ) from exc
    except pika.exceptions.NackError as exc:
        raise RetryNotStored(
            f"not confirmed: the broker refused to store deliveries in {retries_queue}"
        ) from exc


class _LogTeller:
    """State records of replays, published to the log queue in batches; best effort, never fatal."""

    def __init__(self, topology: Topology, enabled: bool) -> None:
        self._queue = topology.log_queue
        self._enabled = enabled
        self._pending: list[records.Record] = []
        self._problem: str | None = None

    def add(self, state_records: Sequence[StateRecord]) -> None:
        if self._enabled:
            self._pending += state_records

    def flush_if_full(self, channel: BlockingChannel) -> None:
        if len(self._pending) >= LOG_BATCH:
            self.flush(channel)

    def flush(self, channel: BlockingChannel) -> str | None:
        """Publish what is pending, confirmed; why the log was not told, if it was not."""
        batch, self._pending = self._pending, []
        if batch and self._problem is None:
            self._problem = self._publish(channel, records.encode(batch))
        return self._problem

    def _publish(self, channel: BlockingChannel, body: bytes) -> str | None:
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent
        )
        try:
            channel.basic_publish("", self._queue, body, properties=properties, mandatory=True)
        except pika.exceptions.UnroutableError:
            return f"the broker has no queue {self._queue} (run `hookline setup`)"
        except pika.exceptions.NackError:
            return f"the broker refused to store the records in {self._queue}"
        except pika.exceptions.AMQPError as exc:  # the channel broke under a replay that failed
            return f"{self._queue}: {describe_cause(exc)}"
        return None
