"""Record failing subscriptions and why a subscription was disabled.

``failing_since`` is when the current run of failed deliveries began (NULL
while healthy); ``disabled_reason`` (``failing``, ``gone`` or ``manual``) and
``disabled_at`` say why and when a subscription was disabled. All nullable, so
existing rows stay as they are: enabled or not, with no reason recorded.

Revision ID: 0002
Revises: 0001
Create Date: 2025-03-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_COLUMNS = ("failing_since", "disabled_reason", "disabled_at")


def upgrade() -> None:
    # Spelled out, not imported from workers.subscriptions.store: see 0001.
    timestamp = sa.DateTime(timezone=True)
    op.add_column("subscriptions", sa.Column("failing_since", timestamp, nullable=True))
    op.add_column("subscriptions", sa.Column("disabled_reason", sa.Text(), nullable=True))
    op.add_column("subscriptions", sa.Column("disabled_at", timestamp, nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite rebuilds the table, PostgreSQL drops the columns in place.
    with op.batch_alter_table("subscriptions") as batch:
        for column in _COLUMNS:
            batch.drop_column(column)
