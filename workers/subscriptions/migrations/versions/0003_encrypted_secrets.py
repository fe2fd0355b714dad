"""Signing secrets are stored encrypted, in columns named for it.

``secret`` becomes ``encrypted_secret`` and ``previous_secret`` becomes
``encrypted_previous_secret``. The values are not touched here: a migration has no key. ``hookline setup``
encrypts them right after migrating (``SubscriptionStore.reseal_secrets``), and
until then the store reads a value that starts with ``whsec_`` as plaintext.

Renamed rather than rewritten in place so that workers of the previous release,
still running during a rollout, fail to reload subscriptions (logged as
``subscriptions_refresh_failed``) and keep signing from the secrets they hold,
instead of reloading encrypted values and signing with those.

Revision ID: 0003
Revises: 0002
Create Date: 2025-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_RENAMES = (("secret", "encrypted_secret"), ("previous_secret", "encrypted_previous_secret"))


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table where it cannot rename in place; PostgreSQL renames.
    with op.batch_alter_table("subscriptions") as batch:
        for old, new in _RENAMES:
            batch.alter_column(old, new_column_name=new)


def downgrade() -> None:
    # The previous release reads secrets in plaintext: going back with encrypted ones would have
    # it sign with ciphertext. Refuse instead; nothing has been changed yet.
    encrypted = sa.text(
        "SELECT count(*) FROM subscriptions WHERE substr(encrypted_secret, 1, 6) <> 'whsec_' "
        "OR substr(encrypted_previous_secret, 1, 6) <> 'whsec_'"
    )
    if op.get_bind().execute(encrypted).scalar():
        raise RuntimeError(
            "cannot downgrade below 0003: some signing secrets are encrypted, and the previous schema "
            "holds them in plaintext"
        )
    with op.batch_alter_table("subscriptions") as batch:
        for old, new in _RENAMES:
            batch.alter_column(new, new_column_name=old)
