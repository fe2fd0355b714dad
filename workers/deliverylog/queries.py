"""Reading the delivery log: an event's story, a page of deliveries, one delivery, what a replay would resend.

Every query is served by an index (:mod:`workers.deliverylog.tables`): pages
are read newest first along ``(received_at, id)``, after an equality on the
filter's column when there is one, and the next page starts after the last row
shown (a keyset cursor, so page 1,000 costs what page 1 does). An event-type
pattern with wildcards is first turned into the event types it matches among
those the log holds, read as a loose index scan (one probe per distinct type).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workers.deliverylog.records import DeliveryState
from workers.deliverylog.tables import (
    attempts_table,
    deliveries_table,
    events_table,
    payloads_table,
    writer_table,
)
from workers.errors import HooklineError, LogEntryNotFound
from workers.subscriptions.patterns import is_wildcard, matches, validate_pattern
from workers.vocabulary import Reason

MAX_PAGE = 1000
# Events a replay reads per query: what one round trip fetches while the replay sends the last.
REPLAY_CHUNK = 500
_CURSOR_VERSION = 1
# Event types a wildcard pattern may expand to before the query stops reading each on its own index.
_TYPES_READ_APART = 16
# Queries merged into one page at most, when a subscription's types are read state by state.
_PARTS_READ_APART = 40


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log keeps it; ``payload`` is None once the payload retention has passed.

    Until the event's own record is written (attempts can come first), the log
    knows only its id and type: ``matched`` is None and ``timestamp`` empty.
    """

    id: str
    type: str
    timestamp: str
    received_at: datetime
    matched: int | None
    payload: str | None

    def to_record(self, *, with_payload: bool = True) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "timestamp": self.timestamp,
            "received_at": self.received_at,
            "matched": self.matched,
        }
        if with_payload:
            record["payload"] = self.payload
        return record


@dataclass(frozen=True, slots=True)
class StoredAttempt:
    """One attempt as the log keeps it."""

    delivery_id: str
    attempt: int
    started_at: datetime
    duration: float
    status: int | None
    reason: str | None
    error: str | None
    response_body: str | None
    state: DeliveryState
    next_attempt_at: datetime | None

    @property
    def id(self) -> str:
        return f"{self.delivery_id}.{self.attempt}"

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "attempt": self.attempt,
            "started_at": self.started_at,
            "duration": self.duration,
            "status": self.status,
            "reason": self.reason,
            "error": self.error,
            "response_body": self.response_body,
            "state": str(self.state),
            "next_attempt_at": self.next_attempt_at,
        }


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """Where one delivery (an event, a subscription, a run) stands, as of its newest record."""

    id: str
    event_id: str
    subscription_id: str
    run: str
    event_type: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_reason: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    received_at: datetime  # the event's
    created_at: datetime
    updated_at: datetime

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "subscription_id": self.subscription_id,
            "run": self.run,
            "state": str(self.state),
            "attempt_count": self.attempts,
            "last_status": self.last_status,
            "last_reason": self.last_reason,
            "last_attempt_at": self.last_attempt_at,
            "next_attempt_at": self.next_attempt_at,
            "received_at": self.received_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class DeliveryHistory:
    """A delivery with every attempt it made, oldest first, and its event (None if the log lost it)."""

    delivery: StoredDelivery
    attempts: tuple[StoredAttempt, ...]
    event: StoredEvent | None


@dataclass(frozen=True, slots=True)
class EventHistory:
    """An event with every delivery it had (by subscription, then run) and their attempts."""

    event: StoredEvent
    deliveries: tuple[DeliveryHistory, ...]


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    """Deliveries newest first; ``next_cursor`` reads the page after this one (None: this is the last)."""

    deliveries: tuple[StoredDelivery, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class WriterProgress:
    """Where the recorders stand: the last batch with records, and how old its oldest record was then."""

    written_at: datetime | None  # None: nothing written yet (or by a recorder before log_0003)
    lag_seconds: float | None

    @classmethod
    def report(
        cls, read: Callable[[], WriterProgress], *, log_enabled: bool
    ) -> tuple[WriterProgress, str | None]:
        """What ``read`` finds, and why it could not read it (None if it could), for a status:
        nothing when the log is off, since no recorder is behind then and its database may not exist."""
        if not log_enabled:
            return cls(None, None), None
        try:
            return read(), None
        except HooklineError as exc:
            return cls(None, None), str(exc)

    def to_record(self) -> dict[str, Any]:
        written_at = None if self.written_at is None else self.written_at.isoformat()
        lag = None if self.lag_seconds is None else round(self.lag_seconds, 3)  # to the millisecond
        return {"last_write_at": written_at, "lag_seconds": lag}


@dataclass(frozen=True, slots=True)
class BreakerRefusals:
    """A subscription whose deliveries an open circuit breaker refused last, lately."""

    subscription_id: str
    deliveries: int  # deliveries whose last attempt it refused
    last_refused_at: datetime


@dataclass(frozen=True, slots=True)
class ReplayCandidate:
    """The latest run of one event's delivery to a subscription, with the event as stored.

    ``payload`` is None once the payload retention has passed: such a
    delivery cannot be sent again.
    """

    delivery_id: str
    event_id: str
    subscription_id: str
    run: str
    event_type: str
    event_timestamp: str
    payload: str | None
    received_at: datetime
    state: DeliveryState
    attempts: int


def event(connection: Connection, event_id: str) -> EventHistory:
    """The event with its payload and every delivery with its attempts; LogEntryNotFound if none."""
    stored = _event(connection, event_id)
    if stored is None:
        raise LogEntryNotFound(f"no event with id {event_id[:100]!r} in the delivery log")
    table = deliveries_table
    query = sa.select(table).where(table.c.event_id == event_id)
    found = [_delivery(row) for row in connection.execute(query).mappings()]
    found.sort(key=lambda each: (each.subscription_id, each.created_at, each.run))
    attempts = _attempts(connection, found)
    deliveries = (DeliveryHistory(each, attempts.get(each.id, ()), stored) for each in found)
    return EventHistory(stored, tuple(deliveries))


def delivery(connection: Connection, delivery_id: str) -> DeliveryHistory:
    """The delivery ``delivery_id`` with its attempts and its event; LogEntryNotFound if none."""
    table = deliveries_table
    query = sa.select(table).where(table.c.id == delivery_id).order_by(table.c.received_at).limit(1)
    row = connection.execute(query).mappings().first()
    if row is None:
        raise LogEntryNotFound(f"no delivery with id {delivery_id[:100]!r} in the delivery log")
    found = _delivery(row)
    attempts = _attempts(connection, [found]).get(found.id, ())
    return DeliveryHistory(found, attempts, _event(connection, found.event_id))


def deliveries(
    connection: Connection,
    *,
    subscription_id: str | None = None,
    event_type_pattern: str | None = None,
    state: DeliveryState | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    """A page of deliveries newest first, filtered; ValueError for a bad pattern, limit or cursor."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    table = deliveries_table
    conditions: list[sa.ColumnElement[bool]] = []
    if subscription_id is not None:
        conditions.append(table.c.subscription_id == subscription_id)
    if state is not None:
        conditions.append(table.c.state == str(DeliveryState(state)))
    if since is not None:
        conditions.append(table.c.received_at >= since)
    if until is not None:
        conditions.append(table.c.received_at < until)
    if cursor is not None:
        conditions.append(sa.tuple_(table.c.received_at, table.c.id) < sa.tuple_(*decode_cursor(cursor)))
    types = None if event_type_pattern is None else _types_matching(connection, event_type_pattern)
    if types == []:
        return DeliveryPage((), None)
    by_state = subscription_id is not None and state is None
    rows = _newest(connection, conditions, types, limit + 1, by_state=by_state)
    shown = tuple(_delivery(row) for row in rows[:limit])
    more = len(rows) > limit
    return DeliveryPage(shown, encode_cursor(shown[-1]) if more else None)


def states_since(connection: Connection, since: datetime) -> dict[str, int]:
    """How many deliveries of the events received since then are in each state (the console's overview).

    ``ix_log_deliveries_state`` (state, received_at) holds all it reads.
    """
    table = deliveries_table
    query = (
        sa.select(table.c.state, sa.func.count()).where(table.c.received_at >= since).group_by(table.c.state)
    )
    return {str(state): int(count) for state, count in connection.execute(query)}


def refused_by_open_breakers(connection: Connection, since: datetime, *, limit: int) -> list[BreakerRefusals]:
    """The subscriptions with deliveries whose last attempt, since ``since``, an open breaker refused.

    Workers keep their breakers in memory, so this is what the log knows of them: a breaker refuses
    an attempt at once (reason ``circuit_open``) until it lets one through. Most recent first;
    ``ix_log_deliveries_circuit_open`` holds only those deliveries.
    """
    table = deliveries_table
    last = sa.func.max(table.c.last_attempt_at)
    query = (
        sa.select(table.c.subscription_id, sa.func.count(), last)
        .where(table.c.last_reason == str(Reason.CIRCUIT_OPEN), table.c.last_attempt_at >= since)
        .group_by(table.c.subscription_id)
        .order_by(last.desc())
        .limit(limit)
    )
    return [BreakerRefusals(str(sub), int(count), at) for sub, count, at in connection.execute(query)]


def writer_progress(connection: Connection) -> WriterProgress:
    """What the last batch of records noted in ``log_writer`` (see :mod:`workers.deliverylog.writer`)."""
    row = connection.execute(sa.select(writer_table.c.written_at, writer_table.c.lag_seconds)).first()
    if row is None:
        return WriterProgress(None, None)
    return WriterProgress(row.written_at, None if row.lag_seconds is None else float(row.lag_seconds))


def replay_candidates(
    connection: Connection,
    subscription_id: str,
    since: datetime,
    until: datetime | None,
    states: Collection[DeliveryState] | None,
    *,
    after: tuple[datetime, str] | None = None,
    chunk: int = REPLAY_CHUNK,
) -> tuple[list[ReplayCandidate], tuple[datetime, str] | None]:
    """One chunk of candidates, oldest event first, and where the next chunk starts (None: done).

    Reads the subscription's deliveries received in [since, until) after the
    event ``after``, keeps each event's latest run (the one whose first record
    came last), and of those the ones in ``states`` (None: any).
    """
    table = deliveries_table
    position = sa.tuple_(table.c.received_at, table.c.event_id)
    query = sa.select(table).where(table.c.subscription_id == subscription_id, table.c.received_at >= since)
    if until is not None:
        query = query.where(table.c.received_at < until)
    if after is not None:
        query = query.where(position > sa.tuple_(*after))
    query = query.order_by(table.c.received_at, table.c.event_id).limit(chunk + 1)
    rows = [_delivery(row) for row in connection.execute(query).mappings()]
    runs = _runs_by_event(rows, complete=len(rows) <= chunk)
    if not runs and rows:  # one event with more runs than a chunk holds: read it whole
        runs = _runs_by_event(_all_runs(connection, rows[0]), complete=True)
    latest = [max(group, key=lambda each: (each.created_at, each.run)) for group in runs]
    chosen = [each for each in latest if states is None or each.state in states]
    events = _events(connection, {each.event_id for each in chosen})
    candidates = [_candidate(each, events[each.event_id]) for each in chosen if each.event_id in events]
    last = runs[-1][0] if runs else None
    following = (last.received_at, last.event_id) if last is not None and len(rows) > chunk else None
    return candidates, following


def encode_cursor(last: StoredDelivery) -> str:
    """An opaque token naming the row a page ended on."""
    raw = json.dumps([_CURSOR_VERSION, last.received_at.isoformat(), last.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (received_at, id) a cursor names; ValueError for anything :func:`encode_cursor` did not make."""
    refusal = "not a cursor printed by `hookline deliveries list`"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, received_at, last_id = json.loads(raw)
        moment = datetime.fromisoformat(received_at)
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise ValueError(refusal) from exc
    if version != _CURSOR_VERSION or not isinstance(last_id, str) or moment.tzinfo is None:
        raise ValueError(refusal)
    return moment, last_id


def _newest(
    connection: Connection,
    conditions: list[sa.ColumnElement[bool]],
    types: list[str] | None,
    limit: int,
    *,
    by_state: bool,
) -> list[sa.RowMapping]:
    table = deliveries_table
    order = (table.c.received_at.desc(), table.c.id.desc())
    apart = _read_apart(types, by_state=by_state)
    if apart is None:
        where = conditions if types is None else [*conditions, table.c.event_type.in_(types)]
        return list(
            connection.execute(sa.select(table).where(*where).order_by(*order).limit(limit)).mappings()
        )
    # Each part read newest first along its own index, then merged: an IN list would make the
    # database sort every delivery of those types, or walk all deliveries newest first filtering.
    parts = [sa.select(table).where(*conditions, *part).order_by(*order).limit(limit) for part in apart]
    merged = sa.union_all(*(part.subquery().select() for part in parts)).subquery()
    query = sa.select(merged).order_by(merged.c.received_at.desc(), merged.c.id.desc()).limit(limit)
    return list(connection.execute(query).mappings())


def _read_apart(types: list[str] | None, *, by_state: bool) -> list[list[sa.ColumnElement[bool]]] | None:
    """The conditions of each part read on its own, or None to read the types in one query.

    With a subscription and no state, a type is read state by state: the index that leads with
    (subscription, type, state) keeps each part in page order, where the subscription's index
    would read all its deliveries to find a type it seldom or never gets.
    """
    if types is None or len(types) > _TYPES_READ_APART:
        return None
    table = deliveries_table
    if not by_state or len(types) * len(DeliveryState) > _PARTS_READ_APART:
        return [[table.c.event_type == each] for each in types]
    return [
        [table.c.event_type == each, table.c.state == str(state)] for each in types for state in DeliveryState
    ]


def _types_matching(connection: Connection, pattern: str) -> list[str]:
    """The event types the log holds that ``pattern`` matches; a pattern without wildcards is itself."""
    validate_pattern(pattern)
    if not is_wildcard(pattern):
        return [pattern]
    return [each for each in _distinct_types(connection) if matches(pattern, each)]


def _distinct_types(connection: Connection) -> list[str]:
    # A loose index scan on ix_log_deliveries_event_type: one probe per distinct type, where
    # SELECT DISTINCT would read every delivery.
    query = sa.text(
        "WITH RECURSIVE types(type) AS ("
        " SELECT min(event_type) FROM log_deliveries"
        " UNION ALL"
        " SELECT (SELECT min(event_type) FROM log_deliveries WHERE event_type > types.type)"
        " FROM types WHERE types.type IS NOT NULL"
        ") SELECT type FROM types WHERE type IS NOT NULL"
    )
    return list(connection.execute(query).scalars())


def _event(connection: Connection, event_id: str) -> StoredEvent | None:
    found = _events(connection, {event_id})
    return found.get(event_id)


def _events(connection: Connection, event_ids: Collection[str]) -> dict[str, StoredEvent]:
    """The events of ``event_ids`` the log holds, with their payloads; the first received of each."""
    if not event_ids:
        return {}
    events, payloads = events_table, payloads_table
    joined = events.outerjoin(
        payloads,
        sa.and_(payloads.c.event_id == events.c.id, payloads.c.received_at == events.c.received_at),
    )
    query = (
        sa.select(events, payloads.c.payload)
        .select_from(joined)
        .where(events.c.id.in_(sorted(event_ids)))
        .order_by(events.c.received_at.desc())
    )
    # Newest first, so the earliest copy of an event (were there two) is the one kept.
    return {row["id"]: _stored_event(row) for row in connection.execute(query).mappings()}


def _attempts(
    connection: Connection, found: Sequence[StoredDelivery]
) -> dict[str, tuple[StoredAttempt, ...]]:
    if not found:
        return {}
    table = attempts_table
    query = (
        sa.select(table)
        .where(
            table.c.delivery_id.in_(sorted({each.id for each in found})),
            table.c.received_at.in_(sorted({each.received_at for each in found})),
        )
        .order_by(table.c.delivery_id, table.c.attempt)
    )
    grouped: dict[str, list[StoredAttempt]] = {}
    for row in connection.execute(query).mappings():
        grouped.setdefault(row["delivery_id"], []).append(_attempt(row))
    return {key: tuple(attempts) for key, attempts in grouped.items()}


def _runs_by_event(rows: Sequence[StoredDelivery], *, complete: bool) -> list[list[StoredDelivery]]:
    """Rows grouped by event, in order; the last group dropped unless ``complete`` (it may go on)."""
    groups: list[list[StoredDelivery]] = []
    for row in rows:
        if groups and groups[-1][0].event_id == row.event_id:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups if complete else groups[:-1]


def _all_runs(connection: Connection, first: StoredDelivery) -> list[StoredDelivery]:
    table = deliveries_table
    query = sa.select(table).where(
        table.c.subscription_id == first.subscription_id,
        table.c.event_id == first.event_id,
        table.c.received_at == first.received_at,
    )
    return [_delivery(row) for row in connection.execute(query).mappings()]


def _candidate(chosen: StoredDelivery, stored: StoredEvent) -> ReplayCandidate:
    return ReplayCandidate(
        delivery_id=chosen.id,
        event_id=chosen.event_id,
        subscription_id=chosen.subscription_id,
        run=chosen.run,
        event_type=stored.type,
        event_timestamp=stored.timestamp,
        payload=stored.payload,
        received_at=chosen.received_at,
        state=chosen.state,
        attempts=chosen.attempts,
    )


def _stored_event(row: sa.RowMapping) -> StoredEvent:
    return StoredEvent(
        id=row["id"],
        type=row["type"],
        timestamp=row["timestamp"],
        received_at=row["received_at"],
        matched=row["matched"],
        payload=row["payload"],
    )


def _delivery(row: sa.RowMapping) -> StoredDelivery:
    return StoredDelivery(
        id=row["id"],
        event_id=row["event_id"],
        subscription_id=row["subscription_id"],
        run=row["run"],
        event_type=row["event_type"],
        state=DeliveryState(row["state"]),
        attempts=row["attempts"],
        last_status=row["last_status"],
        last_reason=row["last_reason"],
        last_attempt_at=row["last_attempt_at"],
        next_attempt_at=row["next_attempt_at"],
        received_at=row["received_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _attempt(row: sa.RowMapping) -> StoredAttempt:
    return StoredAttempt(
        delivery_id=row["delivery_id"],
        attempt=row["attempt"],
        started_at=row["started_at"],
        duration=row["duration"],
        status=row["status"],
        reason=row["reason"],
        error=row["error"],
        response_body=row["response_body"],
        state=DeliveryState(row["state"]),
        next_attempt_at=row["next_attempt_at"],
    )
