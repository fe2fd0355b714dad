"""The delivery log's tables, as the queries see them (SQLAlchemy Core).

Four tables hold what happened, all keyed on the time the event was received
(``received_at``), so that an event, its deliveries and their attempts share a
day and are forgotten together:

- ``log_events``: one row per event, with how many subscriptions it matched;
- ``log_payloads``: the webhook body of each event, apart, so that it can be
  kept for less time than the rest (``HOOKLINE_LOG_PAYLOAD_RETENTION``);
- ``log_deliveries``: one row per event, subscription and run, with where the
  delivery stands; each record about it moves it forward, never back;
- ``log_attempts``: one row per attempt.

On PostgreSQL each is partitioned by day of ``received_at``
(:mod:`workers.deliverylog.partitions`); every primary key therefore ends with
it. On SQLite they are plain tables of the same shape. ``log_writer`` holds
one row that every write locks first, so that writers take turns (see
:mod:`workers.deliverylog.writer`).

The indexes serve the queries of :mod:`workers.deliverylog.queries`: each
filter of ``hookline deliveries list`` leads an index that ends with
``(received_at, id)``, the order pages are read in, newest first.
"""

from __future__ import annotations

import sqlalchemy as sa

from workers.subscriptions.db import UTCDateTime
from workers.vocabulary import Reason

VERSION_TABLE = "hookline_log_version"
# Partitioned by day of this column on PostgreSQL (postgresql_partition_by is ignored elsewhere).
PARTITION_COLUMN = "received_at"
_BY_DAY = f"RANGE ({PARTITION_COLUMN})"
CIRCUIT_OPEN_WHERE = f"last_reason = '{Reason.CIRCUIT_OPEN}'"

metadata = sa.MetaData()

# Mirrors migrations log_0001 to log_0003; tests/integration/test_deliverylog_schema.py checks they agree.
events_table = sa.Table(
    "log_events",
    metadata,
    sa.Column("id", sa.Text(), primary_key=True),
    sa.Column("received_at", UTCDateTime(), primary_key=True),
    sa.Column("type", sa.Text(), nullable=False),
    sa.Column("timestamp", sa.Text(), nullable=False),  # the event's own, as published
    # NULL in a stub: attempts came before the event's record, which completes the row.
    sa.Column("matched", sa.Integer(), nullable=True),
    postgresql_partition_by=_BY_DAY,
)

payloads_table = sa.Table(
    "log_payloads",
    metadata,
    sa.Column("event_id", sa.Text(), primary_key=True),
    sa.Column("received_at", UTCDateTime(), primary_key=True),
    sa.Column("payload", sa.Text(), nullable=False),
    postgresql_partition_by=_BY_DAY,
)

deliveries_table = sa.Table(
    "log_deliveries",
    metadata,
    sa.Column("id", sa.Text(), primary_key=True),
    sa.Column("received_at", UTCDateTime(), primary_key=True),  # the event's
    sa.Column("event_id", sa.Text(), nullable=False),
    sa.Column("subscription_id", sa.Text(), nullable=False),
    sa.Column("run", sa.Text(), nullable=False),
    sa.Column("event_type", sa.Text(), nullable=False),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("last_status", sa.Integer(), nullable=True),
    sa.Column("last_reason", sa.Text(), nullable=True),
    sa.Column("last_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),  # its earliest record: orders runs
    sa.Column("updated_at", UTCDateTime(), nullable=False),  # its newest record applied
    sa.Index("ix_log_deliveries_received_at", "received_at", "id"),
    sa.Index("ix_log_deliveries_subscription", "subscription_id", "received_at", "id"),
    # "What failed for this subscription?": without it, a state the subscription has few deliveries
    # in means reading all of that subscription's deliveries to find them.
    sa.Index("ix_log_deliveries_subscription_state", "subscription_id", "state", "received_at", "id"),
    sa.Index("ix_log_deliveries_state", "state", "received_at", "id"),
    sa.Index("ix_log_deliveries_event_type", "event_type", "received_at", "id"),
    # Two filters no index above serves together (migration log_0002): without these, a type and
    # state holding nothing means reading every delivery in the state, or the subscription's.
    sa.Index("ix_log_deliveries_event_type_state", "event_type", "state", "received_at", "id"),
    sa.Index(
        "ix_log_deliveries_subscription_event_type_state",
        "subscription_id",
        "event_type",
        "state",
        "received_at",
        "id",
    ),
    sa.Index("ix_log_deliveries_event_id", "event_id"),
    # Only the deliveries an open circuit breaker refused last (log_0002): the console's overview.
    sa.Index(
        "ix_log_deliveries_circuit_open",
        "last_attempt_at",
        postgresql_where=sa.text(CIRCUIT_OPEN_WHERE),
        sqlite_where=sa.text(CIRCUIT_OPEN_WHERE),
    ),
    postgresql_partition_by=_BY_DAY,
)

# An attempt's id is "<delivery id>.<attempt>": the key is its two parts, so that reading a
# delivery's attempts is a range of the primary key and needs no index of its own.
attempts_table = sa.Table(
    "log_attempts",
    metadata,
    sa.Column("delivery_id", sa.Text(), primary_key=True),
    sa.Column("attempt", sa.Integer(), primary_key=True),
    sa.Column("received_at", UTCDateTime(), primary_key=True),  # the event's, as its delivery's
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("duration", sa.Float(), nullable=False),
    sa.Column("status", sa.Integer(), nullable=True),
    sa.Column("reason", sa.Text(), nullable=True),
    sa.Column("error", sa.Text(), nullable=True),
    sa.Column("response_body", sa.Text(), nullable=True),
    sa.Column("state", sa.Text(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
    postgresql_partition_by=_BY_DAY,
)

writer_table = sa.Table(
    "log_writer",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("batches", sa.BigInteger(), nullable=False),
    # The last batch that held records (migration log_0003): when, and how old its oldest record was.
    sa.Column("written_at", UTCDateTime(), nullable=True),
    sa.Column("lag_seconds", sa.Float(), nullable=True),
)

# The tables partitioned by day on PostgreSQL, in the order a day's partitions are created.
PARTITIONED = (events_table, payloads_table, deliveries_table, attempts_table)
