"""The delivery log's schema migrations: applying them (``hookline setup``) and checking them (at open).

The log's Alembic scripts live in ``migrations/`` beside this module and
record their revision in a version table of their own
(:data:`~workers.deliverylog.tables.VERSION_TABLE`), so the log can share the
subscription store's database, whose revisions are in ``alembic_version``,
or have one of its own.
"""

from __future__ import annotations

import functools
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine

from workers.deliverylog.tables import VERSION_TABLE
from workers.errors import DatabaseNotMigrated, LogStoreError
from workers.subscriptions.db import describe_error, mask_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic configuration pointing at the log's migrations inside this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


@functools.cache
def head_revision() -> str:
    """The newest log schema revision this code knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise LogStoreError("no delivery log migrations found in the package")
    return head


@functools.cache
def _known_revisions() -> frozenset[str]:
    script = ScriptDirectory.from_config(alembic_config())
    return frozenset(revision.revision for revision in script.walk_revisions())


def migrate_log(engine: Engine) -> list[str]:
    """Upgrade the log's schema behind ``engine`` to the newest; the revisions applied, oldest first."""
    try:
        with engine.begin() as connection:
            before = _current_revision(connection)
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except CommandError as exc:
        raise LogStoreError(f"cannot migrate the delivery log at {mask_url(engine.url)}: {exc}") from exc
    except sa.exc.DBAPIError as exc:
        where = mask_url(engine.url)
        raise LogStoreError(f"cannot migrate the delivery log at {where}: {describe_error(exc)}") from exc
    script = ScriptDirectory.from_config(alembic_config())
    applied = [revision.revision for revision in script.iterate_revisions("head", before)]
    return list(reversed(applied))


def _current_revision(connection: Connection) -> str | None:
    if not sa.inspect(connection).has_table(VERSION_TABLE):
        return None
    return connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()  # noqa: S608 - a constant


def ensure_log_migrated(engine: Engine) -> None:
    """Raise DatabaseNotMigrated unless the log's schema is at :func:`head_revision` (one query)."""
    try:
        with engine.connect() as connection:
            versions = _read_versions(connection)
    except sa.exc.DBAPIError as exc:
        where = mask_url(engine.url)
        raise LogStoreError(f"cannot read the delivery log at {where}: {describe_error(exc)}") from exc
    if versions == [head_revision()]:
        return
    unknown = [version for version in versions if version not in _known_revisions()]
    if unknown:
        raise DatabaseNotMigrated(
            f"delivery log database {mask_url(engine.url)}: schema revision {unknown[0]!r} is unknown to "
            "this version of hookline: upgrade hookline, or check HOOKLINE_LOG_DATABASE_URL"
        )
    raise DatabaseNotMigrated(
        f"delivery log database {mask_url(engine.url)} is not migrated to the current schema: "
        "run `hookline setup`"
    )


def _read_versions(connection: Connection) -> list[str]:
    try:
        query = sa.text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
        return list(connection.execute(query).scalars())
    except sa.exc.DBAPIError:
        # Only now pay for a second query, to tell "never migrated" from a real failure.
        connection.rollback()
        if sa.inspect(connection).has_table(VERSION_TABLE):
            raise
        return []
