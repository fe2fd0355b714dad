"""One Alembic migration chain shipped in the package: applying it, and checking a database is at its head.

hookline ships two chains: the subscription store's (``alembic_version``) and
the delivery log's (its own version table, so the log can share that database
or have one of its own). Both are a :class:`Chain`; their ``env.py`` scripts
call :func:`run_migrations`. Migrations run with no ``alembic.ini``, so
``hookline setup`` works from an installed wheel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL, Connection, Engine

from workers.errors import DatabaseNotMigrated, HooklineError, StoreError
from workers.subscriptions.db import create_engine, describe_error, mask_url, normalize_url


@dataclass(frozen=True)
class Chain:
    directory: Path  # the Alembic script directory
    version_table: str
    noun: str  # what the database is called in messages: "database", "delivery log database"
    setting: str  # the setting that names it, for "check HOOKLINE_..." advice
    error: type[HooklineError]  # what a database failure is raised as

    def config(self, url: str | URL | None = None) -> Config:
        """An Alembic configuration for this chain; with ``url``, one ``alembic.command`` runs alone."""
        config = _config(self.directory)
        if url is not None:
            # ConfigParser interpolation would choke on a %-escaped password.
            rendered = normalize_url(url).render_as_string(hide_password=False)
            config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
        return config

    def head(self) -> str:
        return _head(self.directory)

    def migrate(self, engine: Engine) -> list[str]:
        """Upgrade the schema behind ``engine`` to the head; the revisions applied, oldest first."""
        where = mask_url(engine.url)
        try:
            with engine.begin() as connection:
                before = self._current(connection)
                config = self.config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except CommandError as exc:
            raise self.error(f"cannot migrate the {self.noun} {where}: {exc}") from exc
        except sa.exc.DBAPIError as exc:
            raise self.error(f"cannot migrate the {self.noun} {where}: {describe_error(exc)}") from exc
        applied = ScriptDirectory.from_config(self.config()).iterate_revisions("head", before)
        return [revision.revision for revision in reversed(list(applied))]

    def ensure(self, engine: Engine) -> None:
        """Raise DatabaseNotMigrated unless the schema behind ``engine`` is at the head (one query)."""
        where = mask_url(engine.url)
        try:
            with engine.connect() as connection:
                versions = self._versions(connection)
        except sa.exc.DBAPIError as exc:
            raise self.error(f"cannot read the {self.noun} {where}: {describe_error(exc)}") from exc
        if versions == [self.head()]:
            return
        unknown = [version for version in versions if version not in _known(self.directory)]
        if unknown:
            raise DatabaseNotMigrated(
                f"{self.noun} {where}: schema revision {unknown[0]!r} is unknown to this version of "
                f"hookline: upgrade hookline, or check {self.setting}"
            )
        raise DatabaseNotMigrated(
            f"{self.noun} {where} is not migrated to the current schema: run `hookline setup`"
        )

    def _current(self, connection: Connection) -> str | None:
        if not sa.inspect(connection).has_table(self.version_table):
            return None
        return connection.execute(self._select_version()).scalar()

    def _versions(self, connection: Connection) -> list[str]:
        try:
            return list(connection.execute(self._select_version()).scalars())
        except sa.exc.DBAPIError:
            # Only now pay for a second query, to tell "never migrated" from a real failure.
            connection.rollback()
            if sa.inspect(connection).has_table(self.version_table):
                raise
            return []

    def _select_version(self) -> sa.TextClause:
        return sa.text(f"SELECT version_num FROM {self.version_table}")  # noqa: S608 - a constant name


# The subscription store's chain (with the API's keys), in Alembic's default version table.
SUBSCRIPTIONS = Chain(
    directory=Path(__file__).parent / "migrations",
    version_table="alembic_version",
    noun="database",
    setting="HOOKLINE_DATABASE_URL",
    error=StoreError,
)


def migrate(url: str | URL) -> list[str]:
    """Upgrade the subscription store at ``url`` to the newest schema; the revisions applied, oldest first."""
    engine = create_engine(url)
    try:
        return SUBSCRIPTIONS.migrate(engine)
    finally:
        engine.dispose()


def ensure_migrated(engine: Engine) -> None:
    """Raise DatabaseNotMigrated unless the subscription store is at the newest schema (one query)."""
    SUBSCRIPTIONS.ensure(engine)


def head_revision() -> str:
    """The newest subscription store revision this code knows."""
    return SUBSCRIPTIONS.head()


@functools.cache
def _head(directory: Path) -> str:
    head = ScriptDirectory.from_config(_config(directory)).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise HooklineError(f"no migrations found in {directory}")
    return head


@functools.cache
def _known(directory: Path) -> frozenset[str]:
    script = ScriptDirectory.from_config(_config(directory))
    return frozenset(revision.revision for revision in script.walk_revisions())


def _config(directory: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(directory))
    return config


def run_migrations(version_table: str) -> None:
    """The body of a chain's ``env.py``: on the connection its caller passed, or on ``sqlalchemy.url``.

    ``alembic.context`` stands for the environment of the migration running now, so this
    works only while Alembic runs an ``env.py``.
    """
    if context.is_offline_mode():
        context.configure(
            url=context.config.get_main_option("sqlalchemy.url"),
            literal_binds=True,
            dialect_opts={"paramstyle": "named"},
            version_table=version_table,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_with(connection, version_table)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or pass a connection in config.attributes")
    engine = create_engine(url)
    try:
        with engine.connect() as own_connection:
            _run_with(own_connection, version_table)
    finally:
        engine.dispose()


def _run_with(connection: Connection, version_table: str) -> None:
    context.configure(connection=connection, transactional_ddl=True, version_table=version_table)
    with context.begin_transaction():
        context.run_migrations()
