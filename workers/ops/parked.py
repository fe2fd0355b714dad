"""Invalid events and crashed messages: list, show, replay and purge what hookline parked raw.

Two kinds of parking queue hold messages as they were, not dead letters:

- ``invalid``: ``<prefix>.events.invalid``, events that broke the contract,
  byte for byte, with the reason and the routing key in ``x-hookline-*`` headers,
  and ``<prefix>.log.invalid``, what the recorder could not read or write;
- ``crashed``: the ``.XQ`` companions of the actor queues (``<prefix>.events.XQ``,
  ``<prefix>.retries.XQ``): messages whose actor raised (a copy with the reason,
  parked by :mod:`workers.middleware.fail_on_error`), and those RabbitMQ moved
  there itself (``x-death``): rejected when the copy could not be stored, or
  redelivered past the quorum queue's delivery limit (their worker died each time).

Replay publishes a message back where it came from, on a confirm-mode channel,
and acks the parked one only once the broker confirmed the copy: an event goes
to the exchange with its routing key (so it is validated and fanned out again),
a retries message to the retries queue, a log message to the log queue. Replay is for after the cause is gone
(a fixed worker, a raised HOOKLINE_MAX_EVENT_BYTES); a message that fails the
same way is parked again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.topology import DELIVERY_LIMIT, Topology
from workers.errors import DeadLetterNotFound, ReplayRefused
from workers.ops import queuereader
from workers.ops.dlq import PurgeReport, Refusal, ReplayReport
from workers.ops.queuereader import Progress, Read
from workers.pipeline.deadletters import (
    ORIGIN_QUEUE_HEADER,
    PARKED_AT_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
)
from workers.settings import Settings

# What RabbitMQ's x-death reasons mean for a message in an .XQ queue.
DEATH_REASONS = {
    "rejected": "rejected by its worker (it crashed, or what it handed on was not stored)",
    "delivery_limit": f"delivered more than {DELIVERY_LIMIT} times without being settled "
    "(its worker died each time)",
}


class Kind(StrEnum):
    INVALID = "invalid"
    CRASHED = "crashed"


def queues(topology: Topology, kind: Kind) -> list[str]:
    if kind is Kind.INVALID:
        return [topology.invalid_events_queue, topology.invalid_log_queue]
    return [topology.crashed_queue(queue) for queue in topology.actor_queues]


def queues_of(settings: Settings, kind: Kind) -> list[str]:
    return queues(Topology.from_settings(settings), kind)


@dataclass(frozen=True, slots=True)
class Parked:
    """One parked message, and what its headers say about it."""

    id: str
    queue: str
    reason: str | None
    origin: str | None  # the actor queue a crashed message came from
    routing_key: str | None  # an event's, as it was published
    parked_at: str | None
    properties: pika.BasicProperties
    body: bytes

    @classmethod
    def read(cls, queue: str, properties: pika.BasicProperties, body: bytes) -> Parked:
        headers = dict(properties.headers or {})
        death = _first_death(headers)
        reason = _text(headers.get(REASON_HEADER))
        if reason is None and death is not None:
            reason = DEATH_REASONS.get(str(death.get("reason")), _text(death.get("reason")))
        parked_at = _text(headers.get(PARKED_AT_HEADER)) or _when(death)
        origin = _text(headers.get(ORIGIN_QUEUE_HEADER)) or _text((death or {}).get("queue"))
        routing_key = _text(headers.get(ROUTING_KEY_HEADER)) or _death_routing_key(death)
        return cls(_id_of(properties, body, parked_at), queue, reason, origin, routing_key, parked_at,
                   properties, body)  # fmt: skip

    def to_record(self, *, with_body: bool = True) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "queue": self.queue,
            "reason": self.reason,
            "origin": self.origin,
            "routing_key": self.routing_key,
            "parked_at": self.parked_at,
            "bytes": len(self.body),
        }
        if with_body:
            record["body"] = self.body.decode("utf-8", errors="replace")
        return record


@dataclass(frozen=True, slots=True)
class Listing:
    totals: dict[str, int]  # each queue's count when the listing began
    entries: list[Parked]
    others_reading: bool = False  # another reader held some back when it began


def browse(
    settings: Settings, kind: Kind, *, limit: int | None = None, on_progress: Progress | None = None
) -> Listing:
    """The parked messages of ``kind``, oldest first per queue, up to ``limit``; none leaves its queue."""
    entries: list[Parked] = []
    depths = _depths(settings, kind)
    totals = {queue: depth.ready for queue, depth in depths.items()}
    for _read, entry in _scan_all(settings, totals, on_progress):
        entries.append(entry)
        if len(entries) == limit:
            break
    return Listing(totals, entries, others_reading=any(depth.readers for depth in depths.values()))


def page(
    settings: Settings, kind: Kind, *, offset: int = 0, limit: int, on_progress: Progress | None = None
) -> Listing:
    """``limit`` parked messages of ``kind`` from ``offset``: queue by queue, oldest parked first.

    Read whole and sorted, not from the head, for the reason dlq.page gives: a
    quorum queue takes back what a reader held in no particular order. Those
    parked at the same moment keep the order they were read in (RabbitMQ's
    own x-death times are whole seconds, so a burst of crashes may tie).
    """
    listing = browse(settings, kind, on_progress=on_progress)
    place = {queue: number for number, queue in enumerate(listing.totals)}
    ordered = sorted(listing.entries, key=lambda entry: (place[entry.queue], *_age(entry)))
    return replace(listing, entries=ordered[offset : offset + limit])


def _age(entry: Parked) -> tuple[bool, datetime]:
    """When it was parked; one without a time readable as such comes last."""
    try:
        at = datetime.fromisoformat(entry.parked_at or "")
    except ValueError:
        return (True, datetime.max.replace(tzinfo=UTC))
    return (False, at if at.tzinfo else at.replace(tzinfo=UTC))


def find(settings: Settings, kind: Kind, parked_id: str) -> Parked:
    def look() -> tuple[Parked | None, bool]:
        listing = browse(settings, kind)
        found = next((entry for entry in listing.entries if entry.id == parked_id), None)
        return found, listing.others_reading

    found = queuereader.look_twice(look)
    if found is None:
        raise DeadLetterNotFound(f"no {kind} message with id {parked_id[:100]!r}")
    return found


def count(settings: Settings, kind: Kind) -> dict[str, int]:
    """How many messages each queue of ``kind`` holds now."""
    return {queue: depth.ready for queue, depth in _depths(settings, kind).items()}


def _depths(settings: Settings, kind: Kind) -> dict[str, queuereader.Depth]:
    names = queues(Topology.from_settings(settings), kind)
    with queuereader.channel(settings.amqp_url, f"{kind} messages") as channel:
        return {queue: queuereader.depth(channel, queue) for queue in names}


def replay(
    settings: Settings, kind: Kind, ids: Sequence[str] | None, *, on_progress: Progress | None = None
) -> ReplayReport:
    """Publish the selected messages (``ids``, or all for None) back where they came from (see above)."""
    topology = Topology.from_settings(settings)
    report = ReplayReport()
    found: set[str] = set()
    for read, entry, channel in _scan_selected(settings, kind, ids, on_progress):
        found.add(entry.id)
        try:
            _publish_back(channel, topology, entry)
        except ReplayRefused as exc:
            report.refused.append(Refusal(entry.id, str(exc)))
        else:
            channel.basic_ack(read.tag)  # only now: the broker has confirmed the copy
            report.replayed.append(entry.id)
    report.not_found = sorted(set(ids) - found) if ids is not None else []
    return report


def purge(
    settings: Settings, kind: Kind, ids: Sequence[str] | None, *, on_progress: Progress | None = None
) -> PurgeReport:
    """Remove the selected messages (``ids``, or all for None) for good."""
    if ids is None:
        names = queues(Topology.from_settings(settings), kind)
        with queuereader.channel(settings.amqp_url, f"{kind} messages") as channel:
            purged = sum(channel.queue_purge(queue).method.message_count or 0 for queue in names)
        return PurgeReport(purged=purged, ids=None)
    removed: list[str] = []
    for read, entry, channel in _scan_selected(settings, kind, ids, on_progress):
        channel.basic_ack(read.tag)
        removed.append(entry.id)
    return PurgeReport(purged=len(removed), ids=removed, not_found=sorted(set(ids) - set(removed)))


def _scan_selected(
    settings: Settings, kind: Kind, ids: Sequence[str] | None, on_progress: Progress | None
) -> Iterator[tuple[Read, Parked, BlockingChannel]]:
    wanted = None if ids is None else set(ids)
    totals = count(settings, kind)
    with contextlib.ExitStack() as stack:
        for read, entry, channel in _scan_queues(settings, totals, on_progress, stack):
            if wanted is None or entry.id in wanted:
                yield read, entry, channel


def _scan_all(
    settings: Settings, totals: dict[str, int], on_progress: Progress | None
) -> Iterator[tuple[Read, Parked]]:
    with contextlib.ExitStack() as stack:
        for read, entry, _channel in _scan_queues(settings, totals, on_progress, stack):
            yield read, entry


def _scan_queues(
    settings: Settings, totals: dict[str, int], on_progress: Progress | None, stack: contextlib.ExitStack
) -> Iterator[tuple[Read, Parked, BlockingChannel]]:
    """Every message of every queue in ``totals``, each read on its queue's own channel.

    The channels stay open (unacked messages stay taken) until ``stack`` closes, so nothing a
    later queue holds is read twice, and an operation's acks land on the channel that read it.
    """
    grand_total = sum(totals.values())
    before = 0
    for queue, total in totals.items():
        channel = stack.enter_context(queuereader.channel(settings.amqp_url, queue))
        channel.confirm_delivery()

        def progress(done: int, _total: int, offset: int = before) -> None:
            if on_progress is not None:
                on_progress(offset + done, grand_total)

        for read in queuereader.scan(channel, queue, total, progress):
            yield read, Parked.read(queue, read.properties, read.body), channel
        before += total


def _publish_back(channel: BlockingChannel, topology: Topology, entry: Parked) -> None:
    exchange, routing_key = _destination(topology, entry)
    properties = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent,
        content_type=entry.properties.content_type,
        message_id=entry.properties.message_id,
    )
    try:
        channel.basic_publish(exchange, routing_key, entry.body, properties=properties, mandatory=True)
    except pika.exceptions.UnroutableError as exc:
        raise ReplayRefused(f"not confirmed: nothing in {exchange or 'the broker'} takes {routing_key!r}"
                            " (run `hookline setup`)") from exc  # fmt: skip
    except pika.exceptions.NackError as exc:
        raise ReplayRefused("not confirmed: the broker refused to store the copy") from exc


def _destination(topology: Topology, entry: Parked) -> tuple[str, str]:
    """Where a replayed message goes: (exchange, routing key), or ReplayRefused."""
    if entry.queue == topology.invalid_log_queue:
        return "", topology.log_queue
    came_from = entry.origin or topology.events_queue  # an invalid event came from the events queue
    if came_from == topology.retries_queue:
        return "", topology.retries_queue
    if came_from != topology.events_queue:
        raise ReplayRefused(f"came from {came_from!r}, not a queue of prefix {topology.prefix!r}")
    if not entry.routing_key:
        raise ReplayRefused("its routing key is not known")
    return topology.exchange, entry.routing_key


def _first_death(headers: dict[str, Any]) -> dict[str, Any] | None:
    deaths = headers.get("x-death")
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
        return deaths[0]  # the most recent
    return None


def _death_routing_key(death: dict[str, Any] | None) -> str | None:
    keys = (death or {}).get("routing-keys")
    return _text(keys[0]) if isinstance(keys, list) and keys else None


def _when(death: dict[str, Any] | None) -> str | None:
    moment = (death or {}).get("time")
    return moment.isoformat() if isinstance(moment, datetime) else _text(moment)


def _id_of(properties: pika.BasicProperties, body: bytes, parked_at: str | None) -> str:
    """The message's id: its message_id, the one inside it, or a digest of what it holds."""
    if properties.message_id:
        return str(properties.message_id)
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        parsed = json.loads(body)
        if isinstance(parsed, dict):
            inner = parsed.get("message_id") or parsed.get("id")  # a dramatiq message's, an event's
            if isinstance(inner, str) and inner:
                return inner
    digest = hashlib.sha256(body + (parked_at or "").encode()).hexdigest()
    return f"pk_{digest[:20]}"


def _text(value: object) -> str | None:
    if isinstance(value, bytes):  # pika leaves a header that is not UTF-8 as bytes
        return value.decode("utf-8", errors="replace")
    return None if value is None else str(value)
