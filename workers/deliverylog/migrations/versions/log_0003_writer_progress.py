"""Where the recorders stand: when the last batch was written, and how old its oldest record was.

Every batch already updates the one row of ``log_writer`` (the writers'
turn); two nullable columns on it let ``GET /v1/status``, ``hookline status``
and the console show the recorders' lag from the database, where recorders,
pods without a Service, cannot be reached. Recorders of the previous release
leave them NULL, shown as not known.

Revision ID: log_0003
Revises: log_0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "log_0003"
down_revision = "log_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("log_writer", sa.Column("written_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("log_writer", sa.Column("lag_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("log_writer") as table:  # SQLite drops a column by copying the table
        table.drop_column("lag_seconds")
        table.drop_column("written_at")
