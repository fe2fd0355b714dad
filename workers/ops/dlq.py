"""Operations on the dead-letters queue: browse, replay and purge, over a plain pika connection.

Every operation reads the queue without taking from it, and acks only the
dead letters it selected (:mod:`workers.ops.queuereader`).

Replay publishes a fresh delivery of the same webhook (same ``webhook-id``,
attempt 1 of a new run) to the retries queue as a message for the ``retry`` actor,
on a channel in confirm mode, and acks the dead letter only after the broker
confirmed that copy: an interrupted replay loses nothing, at worst a webhook is
sent twice, which receivers deduplicate by its id. A dead letter whose
subscription was disabled or removed is refused and stays parked.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.topology import Topology
from workers.errors import DeadLetterNotFound, ReplayRefused, RetryNotStored, SubscriptionNotFound
from workers.ops import queuereader
from workers.ops.queuereader import Progress, message_count
from workers.ops.replay import publish_for_retry
from workers.pipeline.deadletters import CAUSE_HEADER, REASON_HEADER, SUBSCRIPTION_HEADER, DeadLetter
from workers.settings import Settings
from workers.subscriptions.store import SubscriptionStore

# What a message without a message_id is called (only a body that is not a dead letter lacks one).
NO_ID = "(no message_id)"


@dataclass(frozen=True, slots=True)
class Entry:
    """One message of the dead-letters queue: a dead letter, or a body that is not one."""

    id: str
    letter: DeadLetter | None
    headers: dict[str, Any]
    body: bytes
    problem: str | None = None

    @classmethod
    def read(cls, properties: pika.BasicProperties, body: bytes) -> Entry:
        headers = dict(properties.headers or {})
        try:
            letter = DeadLetter.from_json(body)
        except (ValueError, TypeError) as exc:
            # Whatever a queue holds is shown, never a reason to stop reading it.
            return cls(properties.message_id or NO_ID, None, headers, body, f"not a dead letter: {exc}")
        return cls(letter.id, letter, headers, body)

    @property
    def subscription_id(self) -> str | None:
        return self.letter.subscription_id if self.letter else self._header(SUBSCRIPTION_HEADER)

    @property
    def dead_lettered_at(self) -> datetime | None:
        try:
            parsed = datetime.fromisoformat(self.letter.dead_lettered_at) if self.letter else None
        except (TypeError, ValueError):
            return None
        return parsed.replace(tzinfo=parsed.tzinfo or UTC) if parsed else None

    def to_record(self) -> dict[str, Any]:
        """Every field, payload included; a body that is not a dead letter is shown as it is."""
        if self.letter is not None:
            return {**self.letter.to_record(), "malformed": False}
        return {
            "id": self.id,
            "malformed": True,
            "problem": self.problem,
            "subscription_id": self.subscription_id,
            "cause": self._header(CAUSE_HEADER),
            "last_reason": self._header(REASON_HEADER),
            "body": self.body.decode("utf-8", errors="replace"),
        }

    def _header(self, name: str) -> str | None:
        value = self.headers.get(name)
        if isinstance(value, bytes):  # pika leaves a header that is not UTF-8 as bytes
            return value.decode("utf-8", errors="replace")
        return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters an operation applies to: all given criteria must hold; none means all."""

    ids: frozenset[str] | None = None
    subscription_id: str | None = None
    dead_lettered_before: datetime | None = None

    @classmethod
    def of_ids(cls, ids: Iterable[str]) -> Selection:
        return cls(ids=frozenset(ids))

    @classmethod
    def of_subscription(cls, subscription_id: str) -> Selection:
        return cls(subscription_id=subscription_id)

    @classmethod
    def older_than(cls, seconds: float, now: datetime | None = None) -> Selection:
        return cls(dead_lettered_before=(now or datetime.now(UTC)) - timedelta(seconds=seconds))

    @property
    def everything(self) -> bool:
        return self.ids is None and self.subscription_id is None and self.dead_lettered_before is None

    def matches(self, entry: Entry) -> bool:
        if self.ids is not None and entry.id not in self.ids:
            return False
        if self.subscription_id is not None and entry.subscription_id != self.subscription_id:
            return False
        if self.dead_lettered_before is None:
            return True
        # A body that is not a dead letter has no date, so only its id or --all selects it.
        at = entry.dead_lettered_at
        return at is not None and at < self.dead_lettered_before

    def covers(self, found: set[str]) -> bool:
        """Whether every id asked for was found, so a read can stop before the end of the queue."""
        return self.ids is not None and self.ids <= found

    def missing(self, found: set[str]) -> list[str]:
        return sorted(self.ids - found) if self.ids is not None else []


EVERYTHING = Selection()


@dataclass(frozen=True, slots=True)
class Listing:
    queue: str
    total: int  # messages in the queue when the listing began
    entries: list[Entry]
    others_reading: bool = False  # another reader held some of them back when it began


@dataclass(frozen=True, slots=True)
class Refusal:
    id: str
    reason: str


@dataclass(slots=True)
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.refused and not self.not_found

    def to_record(self) -> dict[str, Any]:
        refused = [{"id": refusal.id, "reason": refusal.reason} for refusal in self.refused]
        return {"replayed": self.replayed, "refused": refused, "not_found": self.not_found}


@dataclass(slots=True)
class PurgeReport:
    purged: int = 0
    ids: list[str] | None = field(default_factory=list)  # None: the whole queue, ids unread
    not_found: list[str] = field(default_factory=list)

    def to_record(self) -> dict[str, Any]:
        return {"purged": self.purged, "ids": self.ids, "not_found": self.not_found}


def browse(
    settings: Settings,
    selection: Selection = EVERYTHING,
    *,
    limit: int | None = None,
    on_progress: Progress | None = None,
) -> Listing:
    """The dead letters ``selection`` picks, oldest first, up to ``limit``; none leaves the queue."""
    queue = Topology.from_settings(settings).dead_letters_queue
    entries: list[Entry] = []
    with _channel(settings) as channel:
        before = queuereader.depth(channel, queue)
        for _tag, entry in _scan(channel, queue, before.ready, on_progress):
            if selection.matches(entry):
                entries.append(entry)
            if len(entries) == limit:
                break
    return Listing(queue, before.ready, entries, others_reading=before.readers > 0)


def page(
    settings: Settings,
    selection: Selection = EVERYTHING,
    *,
    offset: int = 0,
    limit: int,
    on_progress: Progress | None = None,
) -> Listing:
    """The dead letters ``selection`` picks, oldest dead-lettered first, ``limit`` of them from ``offset``.

    The head of the queue is no order to page by: a quorum queue takes back
    what a reader held in no particular order (beyond a few dozen messages),
    so every list would shuffle the next. A page reads them all (the broker
    sends a scan the whole count anyway, see queuereader.scan) and sorts by
    when each was dead-lettered; one that is no dead letter, with no date,
    comes last, those of the same moment in the order they were read.
    """
    listing = browse(settings, selection, on_progress=on_progress)
    ordered = sorted(listing.entries, key=_age)
    return replace(listing, entries=ordered[offset : offset + limit])


def _age(entry: Entry) -> tuple[bool, datetime]:
    at = entry.dead_lettered_at
    return (at is None, at or datetime.max.replace(tzinfo=UTC))


def find(settings: Settings, dead_letter_id: str) -> Entry:
    def look() -> tuple[Entry | None, bool]:
        listing = browse(settings, Selection.of_ids([dead_letter_id]), limit=1)
        return (listing.entries[0] if listing.entries else None), listing.others_reading

    found = queuereader.look_twice(look)
    if found is None:
        queue = Topology.from_settings(settings).dead_letters_queue
        raise DeadLetterNotFound(f"no dead letter with id {dead_letter_id[:100]!r} in {queue}")
    return found


def count(
    settings: Settings, selection: Selection = EVERYTHING, *, on_progress: Progress | None = None
) -> int:
    """How many dead letters ``selection`` picks now (reading the queue unless it is everything)."""
    if not selection.everything:
        return len(browse(settings, selection, on_progress=on_progress).entries)
    with _channel(settings) as channel:
        return message_count(channel, Topology.from_settings(settings).dead_letters_queue)


def replay(
    settings: Settings,
    selection: Selection,
    store: SubscriptionStore,
    *,
    on_progress: Progress | None = None,
) -> ReplayReport:
    """Send the selected dead letters to the retries queue for a fresh attempt cycle (see above)."""
    topology = Topology.from_settings(settings)
    report = ReplayReport()
    found: set[str] = set()
    with _channel(settings) as channel:
        channel.confirm_delivery()
        replayer = _Replayer(channel, topology.retries_queue, store)
        total = message_count(channel, topology.dead_letters_queue)
        for tag, entry in _scan(channel, topology.dead_letters_queue, total, on_progress):
            if not selection.matches(entry):
                continue
            found.add(entry.id)
            try:
                replayer.replay(entry)
            except ReplayRefused as exc:
                report.refused.append(Refusal(entry.id, str(exc)))
            else:
                channel.basic_ack(tag)  # only now: the broker has confirmed the copy
                report.replayed.append(entry.id)
            if selection.covers(found):
                break
    report.not_found = selection.missing(found)
    return report


def purge(settings: Settings, selection: Selection, *, on_progress: Progress | None = None) -> PurgeReport:
    """Remove the selected dead letters for good; everything else stays in the queue."""
    queue = Topology.from_settings(settings).dead_letters_queue
    if selection.everything:
        with _channel(settings) as channel:
            purged_count = channel.queue_purge(queue).method.message_count
            return PurgeReport(purged=purged_count or 0, ids=None)
    purged: list[str] = []
    found: set[str] = set()
    with _channel(settings) as channel:
        total = message_count(channel, queue)
        for tag, entry in _scan(channel, queue, total, on_progress):
            if selection.matches(entry):
                channel.basic_ack(tag)
                purged.append(entry.id)
                found.add(entry.id)
                if selection.covers(found):
                    break
    return PurgeReport(purged=len(purged), ids=purged, not_found=selection.missing(found))


class _Replayer:
    """Checks and publishes one dead letter at a time, looking each subscription up only once."""

    def __init__(self, channel: BlockingChannel, retries_queue: str, store: SubscriptionStore) -> None:
        self._channel = channel
        self._retries_queue = retries_queue
        self._store = store
        self._refusals: dict[str, str | None] = {}

    def replay(self, entry: Entry) -> None:
        """Publish a fresh delivery and wait for the broker's confirm, or raise ReplayRefused."""
        if entry.letter is None:
            raise ReplayRefused(entry.problem or "not a dead letter")
        subscription_id = entry.letter.subscription_id
        if subscription_id not in self._refusals:
            self._refusals[subscription_id] = self._refusal(subscription_id)
        refusal = self._refusals[subscription_id]
        if refusal is not None:
            raise ReplayRefused(refusal)
        self._publish(entry.letter)

    def _refusal(self, subscription_id: str) -> str | None:
        try:
            subscription = self._store.get(subscription_id)
        except SubscriptionNotFound:
            return f"subscription {subscription_id} was removed"
        return None if subscription.enabled else f"subscription {subscription_id} is disabled"

    def _publish(self, letter: DeadLetter) -> None:
        try:
            publish_for_retry(self._channel, self._retries_queue, [letter.replay()])
        except RetryNotStored as exc:
            raise ReplayRefused(str(exc)) from exc


def _channel(settings: Settings) -> contextlib.AbstractContextManager[BlockingChannel]:
    return queuereader.channel(settings.amqp_url, "dead-letters queue")


def _scan(
    channel: BlockingChannel, queue: str, total: int, on_progress: Progress | None
) -> Iterator[tuple[int, Entry]]:
    """Up to ``total`` dead letters with their delivery tags, each once; none is acked here."""
    for read in queuereader.scan(channel, queue, total, on_progress):
        yield read.tag, Entry.read(read.properties, read.body)
