"""Create the delivery log: events, payloads, deliveries, attempts, and the writers' turn.

On PostgreSQL the four tables are partitioned by day of ``received_at``, with
no partition yet: the writer creates each day's as records for it arrive, and
retention drops them whole. Their indexes are declared on the parent, so
every partition gets them. On SQLite they are plain tables.

Revision ID: log_0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "log_0001"
down_revision = None
branch_labels = None
depends_on = None

_BY_DAY = "RANGE (received_at)"


def upgrade() -> None:
    # Column types are spelled out rather than imported from workers.deliverylog.tables:
    # a migration must keep creating the schema of its day when the code moves on.
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "log_events",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("received_at", timestamp, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.Text(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", "received_at"),
        postgresql_partition_by=_BY_DAY,
    )
    op.create_table(
        "log_payloads",
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("received_at", timestamp, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "received_at"),
        postgresql_partition_by=_BY_DAY,
    )
    _create_deliveries(timestamp)
    op.create_table(
        "log_attempts",
        sa.Column("delivery_id", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("received_at", timestamp, nullable=False),
        sa.Column("started_at", timestamp, nullable=False),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("next_attempt_at", timestamp, nullable=True),
        sa.PrimaryKeyConstraint("delivery_id", "attempt", "received_at"),
        postgresql_partition_by=_BY_DAY,
    )
    writer = op.create_table(
        "log_writer",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("batches", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(writer, [{"id": 1, "batches": 0}])


def _create_deliveries(timestamp: sa.DateTime) -> None:
    op.create_table(
        "log_deliveries",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("received_at", timestamp, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("subscription_id", sa.Text(), nullable=False),
        sa.Column("run", sa.Text(), nullable=False),
        sa.Column("event_type", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_reason", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", timestamp, nullable=True),
        sa.Column("next_attempt_at", timestamp, nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("updated_at", timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", "received_at"),
        postgresql_partition_by=_BY_DAY,
    )
    indexes = {
        "ix_log_deliveries_received_at": ["received_at", "id"],
        "ix_log_deliveries_subscription": ["subscription_id", "received_at", "id"],
        "ix_log_deliveries_subscription_state": ["subscription_id", "state", "received_at", "id"],
        "ix_log_deliveries_state": ["state", "received_at", "id"],
        "ix_log_deliveries_event_type": ["event_type", "received_at", "id"],
        "ix_log_deliveries_event_id": ["event_id"],
    }
    for name, columns in indexes.items():
        op.create_index(name, "log_deliveries", columns)


def downgrade() -> None:
    # Dropping a partitioned table drops its partitions with it.
    for table in ("log_writer", "log_attempts", "log_deliveries", "log_payloads", "log_events"):
        op.drop_table(table)
