"""The delivery log's schema migrations: applying them (``hookline setup``) and checking them (at open).

The log's Alembic scripts live in ``migrations/`` beside this module and
record their revision in a version table of their own
(:data:`~workers.deliverylog.tables.VERSION_TABLE`), so the log can share the
subscription store's database, whose revisions are in ``alembic_version``,
or have one of its own.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from workers.deliverylog.tables import VERSION_TABLE
from workers.errors import LogStoreError
from workers.subscriptions.migrating import Chain

LOG = Chain(
    directory=Path(__file__).parent / "migrations",
    version_table=VERSION_TABLE,
    noun="delivery log database",
    setting="HOOKLINE_LOG_DATABASE_URL",
    error=LogStoreError,
)


def migrate_log(engine: Engine) -> list[str]:
    """Upgrade the log's schema behind ``engine`` to the newest; the revisions applied, oldest first."""
    return LOG.migrate(engine)


def ensure_log_migrated(engine: Engine) -> None:
    """Raise DatabaseNotMigrated unless the log's schema is at :func:`head_revision` (one query)."""
    LOG.ensure(engine)


def head_revision() -> str:
    """The newest log schema revision this code knows."""
    return LOG.head()
