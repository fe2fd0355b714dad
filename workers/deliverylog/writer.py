"""Writing records to the delivery log: in bulk, once each, and never moving a delivery back.

Records arrive at least once and in any order: a worker killed before its ack
sends its records again, a recorder killed before its commit reads them
again, and an event fanned out again after a crash is described again with a
later ``received_at``. Every row is filed under its event's ``received_at``
(the partition key on PostgreSQL), so a record sent again lands on the very
key it wrote before, and only events are ever looked up. One batch is one
transaction that:

1. takes the writers' turn (an upsert of the one row of ``log_writer``, held
   until commit), so that two writers never both decide that an event is new,
   and notes there when it wrote and how old its oldest record was then
   (the recorders' lag, as ``GET /v1/status`` shows it);
2. reads, for each event the batch names, the row the log already has: near
   the record's own time for an event record (a second fan-out comes minutes
   after the first), anywhere for an event named only by attempts (a retry
   or a replay, days later). An event not in the log yet and named only by
   attempts (its own record is late) gets a stub row, its type and
   ``matched`` NULL, which its record completes when it comes;
3. inserts what is new, a table at a time, ``ON CONFLICT DO NOTHING``;
4. upserts each delivery's state from the newest of its records, ordered by
   (attempts, time): a row takes a record's state only if the record is newer
   than the one it holds, so the same records in another order, or twice,
   end in the same row.

Records filed under a time older than the retention are not written: the log
would forget them at once. On PostgreSQL, the first write for a day creates
that day's partitions (:mod:`workers.deliverylog.partitions`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from workers.deliverylog import partitions
from workers.deliverylog.bulk import BulkInsert
from workers.deliverylog.records import (
    AttemptRecord,
    EventRecord,
    Record,
    StateRecord,
    delivery_id,
    happened_at,
)
from workers.deliverylog.tables import (
    attempts_table,
    deliveries_table,
    events_table,
    payloads_table,
    writer_table,
)

# Ids per SELECT ... IN (...): well under SQLite's limit of 32,766 bound parameters.
_LOOKUP_CHUNK = 5000
# How far from an event record's time a copy of it is looked for: a second fan-out after a crash
# comes minutes after the first, a stub made by early attempts seconds after.
NEAR_SECONDS = 86400.0
DeliveryRecord = AttemptRecord | StateRecord


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What one :meth:`LogStore.write` call changed."""

    events: int  # event records new to the log (a stub completed counts)
    deliveries: int  # deliveries created or moved forward
    attempts: int  # attempts new to the log
    expired: int  # records filed under a time older than the retention, not written

    def to_record(self) -> dict[str, int]:
        return {
            "events": self.events,
            "deliveries": self.deliveries,
            "attempts": self.attempts,
            "expired": self.expired,
        }


@dataclass(frozen=True, slots=True)
class _Stored:
    received_at: datetime  # what the event and all its rows are filed under
    complete: bool  # False for a stub: attempts came before the event's own record


@dataclass(slots=True)
class _Plan:
    """The rows one batch writes, each filed under its event's time, those past the retention left out."""

    fresh: list[EventRecord] = field(default_factory=list)  # events new to the log
    completed: list[EventRecord] = field(default_factory=list)  # events the log holds a stub of
    stubs: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)
    filed: dict[str, datetime] = field(default_factory=dict)  # by event id
    expired: int = 0


class Writer:
    """Writes batches of records on one engine's dialect; remembers which day partitions exist."""

    def __init__(self, dialect: str) -> None:
        self._partitioned = dialect == "postgresql"
        self._insert: Callable[[sa.Table], Any] = postgresql.insert if self._partitioned else sqlite.insert
        self._bulk = BulkInsert(dialect)
        self._days: set[date] = set()

    def forget_partitions(self) -> None:
        """Forget which days have partitions (after retention dropped some, or a write found one missing)."""
        self._days.clear()

    def write(
        self, connection: Connection, records: Sequence[Record], *, keep_since: datetime, now: datetime
    ) -> WriteReport:
        """Write ``records`` in the transaction of ``connection``; see the module docstring."""
        self._take_turn(connection, records, now)
        plan = _plan(connection, records, keep_since)
        self._ensure_partitions(connection, plan.filed.values())
        self._insert_new(connection, events_table, plan.stubs)
        return WriteReport(
            events=self._insert_events(connection, plan),
            deliveries=self._upsert_deliveries(connection, plan.deliveries),
            attempts=self._insert_new(connection, attempts_table, plan.attempts),
            expired=plan.expired,
        )

    def _take_turn(self, connection: Connection, records: Sequence[Record], now: datetime) -> None:
        # Holds the row lock until commit: on SQLite it also takes the write lock before any read,
        # so this transaction never has to upgrade a read snapshot that another writer made stale.
        progress: dict[str, Any] = {}
        if records:  # an empty write only asks whether the database answers
            oldest = min(happened_at(record) for record in records)
            progress = {"written_at": now, "lag_seconds": max(0.0, now.timestamp() - oldest)}
        statement = self._insert(writer_table).values(id=1, batches=1, **progress)
        statement = statement.on_conflict_do_update(
            index_elements=[writer_table.c.id], set_={"batches": writer_table.c.batches + 1, **progress}
        )
        connection.execute(statement)

    def _ensure_partitions(self, connection: Connection, moments: Iterable[datetime]) -> None:
        if not self._partitioned:
            return
        days = {partitions.day_of(moment) for moment in moments} - self._days
        if days:
            partitions.create(connection, days)
            self._days |= days

    def _insert_events(self, connection: Connection, plan: _Plan) -> int:
        """Insert new events and their payloads, and complete the stubs whose records came late."""
        payloads = [
            {"event_id": event.id, "received_at": plan.filed[event.id], "payload": event.payload}
            for event in [*plan.fresh, *plan.completed]
        ]
        self._insert_new(connection, payloads_table, payloads)
        if plan.completed:
            table = events_table
            statement = (
                sa.update(table)
                .where(
                    table.c.id == sa.bindparam("event_id"),
                    table.c.received_at == sa.bindparam("filed_at"),
                    table.c.matched.is_(None),
                )
                .values(
                    type=sa.bindparam("event_type"),
                    timestamp=sa.bindparam("event_timestamp"),
                    matched=sa.bindparam("event_matched"),
                )
            )
            connection.execute(
                statement, [_completion(event, plan.filed[event.id]) for event in plan.completed]
            )
        rows = [_event_row(event, plan.filed[event.id]) for event in plan.fresh]
        return self._insert_new(connection, events_table, rows) + len(plan.completed)

    def _insert_new(self, connection: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        return self._bulk.run(connection, table, rows, _do_nothing, "new")

    def _upsert_deliveries(self, connection: Connection, rows: list[dict[str, Any]]) -> int:
        return self._bulk.run(connection, deliveries_table, rows, _move_forward, "forward")


def _do_nothing(statement: Any) -> Any:
    return statement.on_conflict_do_nothing()


def _move_forward(statement: Any) -> Any:
    """A delivery's row takes the offered state only if newer, its last attempt only if later."""
    stored, offered = deliveries_table.c, statement.excluded
    newer = sa.tuple_(offered.attempts, offered.updated_at) > sa.tuple_(stored.attempts, stored.updated_at)
    later_attempt = sa.and_(
        offered.last_attempt_at.is_not(None),
        sa.or_(stored.last_attempt_at.is_(None), offered.last_attempt_at > stored.last_attempt_at),
    )
    earlier = offered.created_at < stored.created_at

    def pick(condition: sa.ColumnElement[bool], column: str) -> sa.ColumnElement[Any]:
        # Every CASE reads the row as it was before this statement, whatever the order of the SETs.
        return sa.case((condition, offered[column]), else_=stored[column])

    state_columns = ("state", "attempts", "last_reason", "next_attempt_at", "updated_at")
    changes = {column: pick(newer, column) for column in state_columns}
    changes |= {column: pick(later_attempt, column) for column in ("last_status", "last_attempt_at")}
    changes["created_at"] = pick(earlier, "created_at")
    return statement.on_conflict_do_update(
        index_elements=[stored.id, stored.received_at],
        set_=changes,
        where=sa.or_(newer, later_attempt, earlier),
    )


def _plan(connection: Connection, records: Sequence[Record], keep_since: datetime) -> _Plan:
    events = _first_of_each(record for record in records if isinstance(record, EventRecord))
    by_delivery = _by_delivery(record for record in records if not isinstance(record, EventRecord))
    plan = _file_events(connection, events, by_delivery)
    for key, group in by_delivery.items():
        filed = plan.filed[group[0].event_id]
        if filed < keep_since:
            plan.expired += len(group)
            continue
        plan.deliveries.append(_delivery_row(key, filed, group))
        plan.attempts.extend(_attempt_rows(key, filed, group))
    plan.expired += sum(plan.filed[event.id] < keep_since for event in plan.fresh + plan.completed)
    plan.fresh = [event for event in plan.fresh if plan.filed[event.id] >= keep_since]
    plan.completed = [event for event in plan.completed if plan.filed[event.id] >= keep_since]
    plan.stubs = [row for row in plan.stubs if row["received_at"] >= keep_since]
    plan.filed = {key: moment for key, moment in plan.filed.items() if moment >= keep_since}
    return plan


def _file_events(
    connection: Connection, events: dict[str, EventRecord], by_delivery: dict[str, list[DeliveryRecord]]
) -> _Plan:
    """Under which time each event of the batch is filed: the log's, its record's, or a new stub's."""
    named = {group[0].event_id: group for group in by_delivery.values() if group[0].event_id not in events}
    stored = _stored_events(connection, list(events), near=[event.received_at for event in events.values()])
    stored |= _stored_events(connection, list(named))
    plan = _Plan(filed={key: found.received_at for key, found in stored.items()})
    for key, event in events.items():
        if key not in stored:
            plan.filed[key] = _moment(event.received_at)
            plan.fresh.append(event)
        elif not stored[key].complete:
            plan.completed.append(event)
    for key, group in named.items():
        if key not in stored:
            plan.filed[key] = _earliest(group)
            plan.stubs.append(_stub_row(key, plan.filed[key], group))
    return plan


def _first_of_each(events: Iterable[EventRecord]) -> dict[str, EventRecord]:
    """One record per event id: the earliest received, as a second fan-out of it comes later."""
    first: dict[str, EventRecord] = {}
    for event in events:
        known = first.get(event.id)
        if known is None or event.received_at < known.received_at:
            first[event.id] = event
    return first


def _by_delivery(records: Iterable[Record]) -> dict[str, list[DeliveryRecord]]:
    groups: dict[str, list[DeliveryRecord]] = {}
    for record in records:
        assert isinstance(record, AttemptRecord | StateRecord)  # noqa: S101 - events were taken out; narrows for mypy
        key = delivery_id(record.event_id, record.subscription_id, record.run)
        groups.setdefault(key, []).append(record)
    return groups


def _stored_events(
    connection: Connection, ids: Sequence[str], *, near: Sequence[float] = ()
) -> dict[str, _Stored]:
    """The log's row of each of ``ids`` (the earliest, were there two), looked for near ``near`` if given.

    Looking near some times reads the partitions of a few days; looking
    anywhere reads every partition's index once per id.
    """
    table = events_table
    window = []
    if near:
        window = [
            table.c.received_at >= _moment(min(near) - NEAR_SECONDS),
            table.c.received_at < _moment(max(near) + NEAR_SECONDS),
        ]
    found: dict[str, _Stored] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), _LOOKUP_CHUNK):
        chunk = ordered[start : start + _LOOKUP_CHUNK]
        query = sa.select(table.c.id, table.c.received_at, table.c.matched).where(
            table.c.id.in_(chunk), *window
        )
        for key, received_at, matched in connection.execute(query):
            if key not in found or received_at < found[key].received_at:
                found[key] = _Stored(received_at, matched is not None)
    return found


def _order(record: DeliveryRecord) -> tuple[int, float]:
    """How records of one delivery are ordered: by attempts made, then by time."""
    if isinstance(record, AttemptRecord):
        return (record.attempt, record.started_at)
    return (record.attempts, record.at)


def _earliest(group: Sequence[DeliveryRecord]) -> datetime:
    return _moment(min(_order(record)[1] for record in group))


def _event_row(event: EventRecord, filed: datetime) -> dict[str, Any]:
    return {
        "id": event.id,
        "received_at": filed,
        "type": event.type,
        "timestamp": event.timestamp,
        "matched": event.matched,
    }


def _stub_row(event_id: str, filed: datetime, group: Sequence[DeliveryRecord]) -> dict[str, Any]:
    """An event known only from its deliveries' records: its type, no timestamp or match count yet."""
    return {
        "id": event_id,
        "received_at": filed,
        "type": group[0].event_type,
        "timestamp": "",
        "matched": None,
    }


def _completion(event: EventRecord, filed: datetime) -> dict[str, Any]:
    return {
        "event_id": event.id,
        "filed_at": filed,
        "event_type": event.type,
        "event_timestamp": event.timestamp,
        "event_matched": event.matched,
    }


def _delivery_row(key: str, filed: datetime, group: Sequence[DeliveryRecord]) -> dict[str, Any]:
    newest = max(group, key=_order)
    attempts, at = _order(newest)
    tried = [record for record in group if isinstance(record, AttemptRecord)]
    last_try = max(tried, key=lambda record: record.started_at) if tried else None
    return {
        "id": key,
        "received_at": filed,
        "event_id": newest.event_id,
        "subscription_id": newest.subscription_id,
        "run": newest.run,
        "event_type": newest.event_type,
        "state": str(newest.state),
        "attempts": attempts,
        "last_status": last_try.status if last_try else None,
        "last_reason": newest.reason,
        "last_attempt_at": _moment(last_try.started_at) if last_try else None,
        "next_attempt_at": _maybe_moment(newest.next_attempt_at),
        "created_at": _earliest(group),
        "updated_at": _moment(at),
    }


def _attempt_rows(key: str, filed: datetime, group: Sequence[DeliveryRecord]) -> list[dict[str, Any]]:
    rows: dict[int, dict[str, Any]] = {}
    for record in group:
        if isinstance(record, AttemptRecord) and record.attempt not in rows:
            rows[record.attempt] = {
                "delivery_id": key,
                "attempt": record.attempt,
                "received_at": filed,
                "started_at": _moment(record.started_at),
                "duration": record.duration,
                "status": record.status,
                "reason": record.reason,
                "error": record.error,
                "response_body": record.response_body,
                "state": str(record.state),
                "next_attempt_at": _maybe_moment(record.next_attempt_at),
            }
    return list(rows.values())


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _maybe_moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else _moment(seconds)
