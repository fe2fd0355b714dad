"""Writing records to the delivery log: in bulk, once each, and never moving a delivery back.

Records arrive at least once and in any order: a worker killed before its ack
sends its records again, a recorder killed before its commit reads them
again, and an event fanned out again after a crash is described again with a
later ``received_at``. So one batch is one transaction that:

1. takes the writers' turn (an upsert of the one row of ``log_writer``, held
   until commit), so that two writers never both decide that an event or a
   delivery is new;
2. reads when each event and delivery of the batch was first received, if
   the log has it: a delivery, and each of its attempts, are filed under that
   time for good, so a record sent again finds the row it already wrote;
3. inserts what is new, in multi-row statements, ``ON CONFLICT DO NOTHING``;
4. upserts each delivery's state from the newest of its records, ordered by
   (attempts, time): a row takes a record's state only if the record is newer
   than the one it holds, so the same records in another order, or twice,
   end in the same row.

Records filed under a time older than the retention are not written: the log
would forget them at once. On PostgreSQL, the first write for a day creates
that day's partitions (:mod:`workers.deliverylog.partitions`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from workers.deliverylog import partitions
from workers.deliverylog.records import AttemptRecord, EventRecord, Record, StateRecord, delivery_id
from workers.deliverylog.tables import (
    attempts_table,
    deliveries_table,
    events_table,
    payloads_table,
    writer_table,
)

# Ids per SELECT ... IN (...): well under SQLite's limit of 32,766 bound parameters.
_LOOKUP_CHUNK = 5000
DeliveryRecord = AttemptRecord | StateRecord


@dataclass(frozen=True, slots=True)
class WriteReport:
    """What one :meth:`LogStore.write` call changed."""

    events: int  # events new to the log
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


class Writer:
    """Writes batches of records on one engine's dialect; remembers which day partitions exist."""

    def __init__(self, dialect: str) -> None:
        self._dialect = dialect
        self._partitioned = dialect == "postgresql"
        self._insert: Callable[[sa.Table], Any] = postgresql.insert if self._partitioned else sqlite.insert
        self._days: set[date] = set()

    def forget_partitions(self) -> None:
        """Forget which days have partitions (after retention dropped some, or a write found one missing)."""
        self._days.clear()

    def write(
        self, connection: Connection, records: Sequence[Record], *, keep_since: datetime
    ) -> WriteReport:
        """Write ``records`` in the transaction of ``connection``; see the module docstring."""
        self._take_turn(connection)
        events = _first_of_each(record for record in records if isinstance(record, EventRecord))
        by_delivery = _by_delivery(record for record in records if not isinstance(record, EventRecord))
        event_ids = set(events) | {group[0].event_id for group in by_delivery.values()}
        stored_events = _received_times(connection, events_table.c.id, event_ids)
        stored_deliveries = _received_times(connection, deliveries_table.c.id, by_delivery)
        received = {event.id: _moment(event.received_at) for event in events.values()} | stored_events
        new_events = [event for event in events.values() if event.id not in stored_events]
        expired = sum(received[event.id] < keep_since for event in new_events)
        new_events = [event for event in new_events if received[event.id] >= keep_since]
        deliveries, attempts = [], []
        for key, group in by_delivery.items():
            filed = stored_deliveries.get(key) or received.get(group[0].event_id) or _earliest(group)
            if filed < keep_since:
                expired += len(group)
                continue
            deliveries.append(_delivery_row(key, filed, group))
            attempts.extend(_attempt_rows(key, filed, group))
        self._ensure_partitions(connection, [received[event.id] for event in new_events])
        self._ensure_partitions(connection, [row["received_at"] for row in deliveries])
        return WriteReport(
            events=self._insert_events(connection, new_events, received),
            deliveries=self._upsert_deliveries(connection, deliveries),
            attempts=self._insert_new(connection, attempts_table, attempts),
            expired=expired,
        )

    def _take_turn(self, connection: Connection) -> None:
        # Holds the row lock until commit: on SQLite it also takes the write lock before any read,
        # so this transaction never has to upgrade a read snapshot that another writer made stale.
        statement = self._insert(writer_table).values(id=1, batches=1)
        statement = statement.on_conflict_do_update(
            index_elements=[writer_table.c.id], set_={"batches": writer_table.c.batches + 1}
        )
        connection.execute(statement)

    def _ensure_partitions(self, connection: Connection, moments: Iterable[datetime]) -> None:
        if not self._partitioned:
            return
        days = {partitions.day_of(moment) for moment in moments} - self._days
        if days:
            partitions.create(connection, days)
            self._days |= days

    def _insert_events(
        self, connection: Connection, events: Sequence[EventRecord], received: dict[str, datetime]
    ) -> int:
        rows = [
            {
                "id": event.id,
                "received_at": received[event.id],
                "type": event.type,
                "timestamp": event.timestamp,
                "matched": event.matched,
            }
            for event in events
        ]
        payloads = [
            {"event_id": event.id, "received_at": received[event.id], "payload": event.payload}
            for event in events
        ]
        self._insert_new(connection, payloads_table, payloads)
        return self._insert_new(connection, events_table, rows)

    def _insert_new(self, connection: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        statement, parameters = self._rows_into(table, rows)
        statement = statement.on_conflict_do_nothing().returning(table.primary_key.columns[0])
        return len(connection.execute(statement, parameters).all())

    def _rows_into(
        self, table: sa.Table, rows: list[dict[str, Any]]
    ) -> tuple[Any, list[dict[str, Any]] | None]:
        """An INSERT of ``rows`` into ``table``, and the parameters to execute it with.

        On PostgreSQL each column travels as one array, unnested server-side: a
        statement of a few parameters however many rows, where a multi-row
        VALUES list costs the driver time per parameter and executemany costs
        the server a statement per row. On SQLite, executemany is the fast way.
        """
        if not self._partitioned:
            return self._insert(table), rows
        names = list(rows[0])
        arrays = [
            sa.bindparam(
                f"{name}_values", [row[name] for row in rows], type_=postgresql.ARRAY(table.c[name].type)
            )
            for name in names
        ]
        values = sa.func.unnest(*arrays).table_valued(*names).render_derived()
        return self._insert(table).from_select(names, sa.select(*(values.c[name] for name in names))), None

    def _upsert_deliveries(self, connection: Connection, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        statement, parameters = self._rows_into(deliveries_table, rows)
        stored, offered = deliveries_table.c, statement.excluded
        newer = sa.tuple_(offered.attempts, offered.updated_at) > sa.tuple_(
            stored.attempts, stored.updated_at
        )
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
        statement = statement.on_conflict_do_update(
            index_elements=[stored.id, stored.received_at],
            set_=changes,
            where=sa.or_(newer, later_attempt, earlier),
        ).returning(stored.id)
        return len(connection.execute(statement, parameters).all())


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


def _received_times(
    connection: Connection, column: sa.Column[str], ids: Collection[str]
) -> dict[str, datetime]:
    """When each of ``ids`` already in ``column``'s table was received (the earliest, were there two)."""
    table = column.table
    found: dict[str, datetime] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), _LOOKUP_CHUNK):
        chunk = ordered[start : start + _LOOKUP_CHUNK]
        query = sa.select(column, table.c.received_at).where(column.in_(chunk))
        for key, received_at in connection.execute(query):
            if key not in found or received_at < found[key]:
                found[key] = received_at
    return found


def _order(record: DeliveryRecord) -> tuple[int, float]:
    """How records of one delivery are ordered: by attempts made, then by time."""
    if isinstance(record, AttemptRecord):
        return (record.attempt, record.started_at)
    return (record.attempts, record.at)


def _earliest(group: Sequence[DeliveryRecord]) -> datetime:
    return _moment(min(_order(record)[1] for record in group))


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
