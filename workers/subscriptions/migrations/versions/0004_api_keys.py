"""API keys of ``hookline api``, and the answers it remembers under an ``Idempotency-Key``.

``api_keys`` holds a SHA-256 hash of each key, never the key (it is shown once,
by ``hookline api-keys create``), with the key's first characters (``prefix``)
so that an operator can tell which key a leaked token is. A key is revoked by
stamping ``revoked_at``; it stays listed. ``last_used_at`` is written at most
once a minute per key and API process.

``api_idempotency`` holds, per API key and ``Idempotency-Key``, a fingerprint of
the first request and, once it finished, the answer it got; rows older than
``HOOKLINE_API_IDEMPOTENCY_RETENTION`` are deleted by the API.

New tables only: workers of the previous release ignore them, and a downgrade
drops them (every key then has to be created again).

Revision ID: 0004
Revises: 0003
Create Date: 2025-07-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Spelled out, not imported from workers.api: see 0001.
    timestamp = sa.DateTime(timezone=True)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("prefix", sa.Text(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", timestamp, nullable=False),
        sa.Column("last_used_at", timestamp, nullable=True),
        sa.Column("revoked_at", timestamp, nullable=True),
    )
    op.create_index("api_keys_token_hash", "api_keys", ["token_hash"], unique=True)
    op.create_table(
        "api_idempotency",
        sa.Column("api_key_id", sa.Text(), primary_key=True),
        sa.Column("idempotency_key", sa.Text(), primary_key=True),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("created_at", timestamp, nullable=False),
    )
    op.create_index("api_idempotency_created_at", "api_idempotency", ["created_at"])


def downgrade() -> None:
    op.drop_index("api_idempotency_created_at", "api_idempotency")
    op.drop_table("api_idempotency")
    op.drop_index("api_keys_token_hash", "api_keys")
    op.drop_table("api_keys")
