"""The API's own tables, in the subscription store's database (migration 0004 creates them).

``api_keys`` holds a hash of each key, never the key itself; ``api_idempotency``
holds the answers given under an ``Idempotency-Key``. :func:`transaction` is how
both are read and written: database failures become StoreError, named without
a password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workers.errors import StoreError
from workers.subscriptions.db import UTCDateTime, describe_error, mask_url

metadata = sa.MetaData()

# Mirrors migration 0004; tests/integration/test_migrations.py checks they agree.
api_keys_table = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text(), primary_key=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("token_hash", sa.Text(), nullable=False),
    sa.Column("prefix", sa.Text(), nullable=False),
    sa.Column("read_only", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
    sa.Index("api_keys_token_hash", "token_hash", unique=True),
)

idempotency_table = sa.Table(
    "api_idempotency",
    metadata,
    sa.Column("api_key_id", sa.Text(), primary_key=True),
    sa.Column("idempotency_key", sa.Text(), primary_key=True),
    sa.Column("fingerprint", sa.Text(), nullable=False),
    sa.Column("status_code", sa.Integer(), nullable=True),  # NULL while the first request runs
    sa.Column("body", sa.Text(), nullable=True),
    sa.Column("location", sa.Text(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("api_idempotency_created_at", "created_at"),
)


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    try:
        with engine.begin() as connection:
            yield connection
    except sa.exc.IntegrityError:
        raise  # a conflict the caller expects (a key taken twice), not a failure
    except sa.exc.DBAPIError as exc:
        raise StoreError(f"database at {mask_url(engine.url)}: {describe_error(exc)}") from exc
