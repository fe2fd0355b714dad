"""Indexes for a list filtered by event type and state, with or without a subscription.

Without them, "the dead letters of type X" read every dead letter newest first
until a page of type X was found, all of them when there is none; with a
subscription, that subscription's deliveries in the state. Each index leads
with the filters' columns and ends with ``(received_at, id)``, the order a
page is read in. On PostgreSQL, an index declared on the partitioned table is
built on every day partition (and on those made later).

Revision ID: log_0002
Revises: log_0001
Create Date: 2026-11-29
"""

from __future__ import annotations

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


def upgrade() -> None:
    for name, columns in _INDEXES.items():
        op.create_index(name, "log_deliveries", columns)


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, "log_deliveries")
