"""Indexes for a list filtered by event type and state, and for the breakers the console shows open.

Without the first two, "the dead letters of type X" read every dead letter
newest first until a page of type X was found, all of them when there is
none; with a subscription, that subscription's deliveries in the state. Each
leads with the filters' columns and ends with ``(received_at, id)``, the order
a page is read in. The third holds only the deliveries whose last attempt an
open circuit breaker refused, by when: the console's overview lists the
subscriptions they belong to. On PostgreSQL, an index declared on the
partitioned table is built on every day partition (and on those made later).

Revision ID: log_0002
Revises: log_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "log_0002"
down_revision = "log_0001"
branch_labels = None
depends_on = None

_INDEXES = {
    "ix_log_deliveries_event_type_state": ["event_type", "state", "received_at", "id"],
    "ix_log_deliveries_subscription_event_type_state": [
        "subscription_id",
        "event_type",
        "state",
        "received_at",
        "id",
    ],
}


_REFUSED = "ix_log_deliveries_circuit_open"
_REFUSED_WHERE = "last_reason = 'circuit_open'"


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "log_deliveries", columns)
    where = sa.text(_REFUSED_WHERE)
    op.create_index(
        _REFUSED, "log_deliveries", ["last_attempt_at"], postgresql_where=where, sqlite_where=where
    )


def downgrade() -> None:
    for name in [*_INDEXES, _REFUSED]:
        op.drop_index(name, "log_deliveries")
