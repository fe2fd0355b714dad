"""Forgetting: the delivery log keeps ``HOOKLINE_LOG_RETENTION``, payloads ``HOOKLINE_LOG_PAYLOAD_RETENTION``.

On PostgreSQL a day's partitions are dropped whole once the day is older than
the retention, and a day's payload partition once it is older than the payload
retention: a metadata change, whatever the day held, and no dead rows left for
VACUUM. Each pass also creates today's and tomorrow's partitions, so the first
writes of a day never wait for DDL. Dropping a partition needs a moment of
exclusive lock on its table; a pass waits at most :data:`LOCK_TIMEOUT` for it
(a long query holds it) and leaves the rest to the next pass.

On SQLite (a single host, the quickstart) rows older than the retention are
deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workers.deliverylog import partitions
from workers.deliverylog.tables import (
    PARTITIONED,
    attempts_table,
    deliveries_table,
    events_table,
    payloads_table,
)

LOCK_TIMEOUT = "5s"


@dataclass(frozen=True, slots=True)
class RetentionReport:
    """What one pass forgot: the events' and payloads' cutoffs, partitions dropped or rows deleted."""

    cutoff: datetime  # events, deliveries and attempts received before this are gone
    payload_cutoff: datetime  # payloads of events received before this are gone
    dropped_partitions: list[str] = field(default_factory=list)  # PostgreSQL
    deleted_rows: dict[str, int] = field(default_factory=dict)  # SQLite: by table

    def to_record(self) -> dict[str, object]:
        """The report as plain JSON values, for a log line."""
        return {
            "cutoff": self.cutoff.isoformat(),
            "payload_cutoff": self.payload_cutoff.isoformat(),
            "dropped_partitions": self.dropped_partitions,
            "deleted_rows": self.deleted_rows,
        }


def enforce(
    connection: Connection, now: datetime, retention: timedelta, payload_retention: timedelta | None
) -> RetentionReport:
    """Forget what is older than the retentions, in the transaction of ``connection``."""
    cutoff = now - retention
    payload_cutoff = max(cutoff, now - payload_retention) if payload_retention is not None else cutoff
    if connection.dialect.name == "postgresql":
        return _drop_partitions(connection, now, cutoff, payload_cutoff)
    return _delete_rows(connection, cutoff, payload_cutoff)


def _drop_partitions(
    connection: Connection, now: datetime, cutoff: datetime, payload_cutoff: datetime
) -> RetentionReport:
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    today = partitions.day_of(now)
    partitions.create(connection, [today, today + timedelta(1)])
    dropped = partitions.drop_older(connection, payloads_table.name, payload_cutoff)
    for table in PARTITIONED:
        if table is not payloads_table:
            dropped += partitions.drop_older(connection, table.name, cutoff)
    return RetentionReport(cutoff, payload_cutoff, dropped_partitions=dropped)


def _delete_rows(connection: Connection, cutoff: datetime, payload_cutoff: datetime) -> RetentionReport:
    deleted = {}
    for table, before in (
        (payloads_table, payload_cutoff),
        (attempts_table, cutoff),
        (deliveries_table, cutoff),
        (events_table, cutoff),
    ):
        deleted[table.name] = _delete_before(connection, table, before)
    return RetentionReport(cutoff, payload_cutoff, deleted_rows=deleted)


def _delete_before(connection: Connection, table: sa.Table, before: datetime) -> int:
    # Attempts are reached through their deliveries' index on received_at. Events and payloads
    # have none (on PostgreSQL it would only slow the writes): one scan of each per pass.
    if table is attempts_table:
        old = sa.select(deliveries_table.c.id).where(deliveries_table.c.received_at < before)
        statement = sa.delete(table).where(table.c.delivery_id.in_(old), table.c.received_at < before)
    else:
        statement = sa.delete(table).where(table.c.received_at < before)
    return connection.execute(statement).rowcount
