"""Database engines and schema migrations for the subscription store.

SQLite suits a single host (several worker processes share one file);
PostgreSQL suits everything else. A relative SQLite path is taken from the
working directory and shown absolute in every message, so a command run from
another directory says which file it opened; hookline creates that file
readable by its owner only. Migrations are Alembic scripts shipped
inside the package, so ``hookline setup`` works from an installed wheel with no
``alembic.ini``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url

from workers.errors import StoreError

# Query parameters libpq reads a password from (postgresql://host/db?password=...).
_SECRET_QUERY_KEYS = frozenset({"password", "sslpassword"})
_MASK = "***"
SQLITE_BUSY_TIMEOUT_SECONDS = 30.0
POSTGRES_CONNECT_TIMEOUT_SECONDS = 10


def normalize_url(url: str | URL) -> URL:
    """The URL as SQLAlchemy should see it: plain ``postgresql://`` means psycopg 3; SQLite paths absolute."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    path = sqlite_file(parsed)
    if path is not None:
        parsed = parsed.set(database=str(path))
    return parsed


def sqlite_file(url: URL) -> Path | None:
    """The absolute path of a SQLite database file; None for another database, or one in memory or by URI."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if url.query.get("uri") == "true":  # `file:` URIs carry their own options; left as written
        return None
    return Path(os.path.abspath(url.database))  # noqa: PTH100 - absolute without resolving symlinks


def mask_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``, in the user part and in the query, safe to show."""
    try:
        parsed = normalize_url(url)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"
    hidden = {key: _MASK for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS}
    rendered = parsed.update_query_dict(hidden).render_as_string(hide_password=True)
    # Query values are percent-encoded when rendered: show the mask as the user part shows it.
    return rendered.replace("%2A%2A%2A", _MASK)


def create_engine(url: str | URL) -> Engine:
    """An engine safe to share between threads, for SQLite or PostgreSQL."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return sa.create_engine(
        parsed,
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_SECONDS},
    )


def _sqlite_engine(url: URL) -> Engine:
    path = sqlite_file(url)
    if path is not None:
        _create_private_file(path)
    engine = sa.create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
    )
    sa.event.listen(engine, "connect", _configure_sqlite_connection)
    sa.event.listen(engine, "begin", _begin_sqlite_transaction)
    return engine


def _create_private_file(path: Path) -> None:
    """Create an empty database file only its owner may read, before SQLite creates it by the umask.

    SQLite takes an empty file as an empty database, and gives the ``-wal`` and
    ``-shm`` files it adds the mode of this one. A file that exists keeps its mode.
    """
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise StoreError(f"cannot create the SQLite database {path}: {exc.strerror}") from exc
    os.close(descriptor)


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Take transactions away from the sqlite3 module, which would otherwise run
    # DDL outside them (a half-applied migration) and begin them late; see
    # _begin_sqlite_transaction. WAL lets readers proceed while one process
    # writes, and survives in the file, so setting it on every connect is cheap.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A ``timestamptz`` that refuses naive datetimes and always returns aware UTC ones.

    SQLite has no time zone type and PostgreSQL answers in the session's time
    zone; either way the store hands out UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - TypeDecorator's signature
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a time zone is required")
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[datetime | None], Any] | None:
        if dialect.name != "sqlite":
            return super().bind_processor(dialect)

        # SQLite stores the text SQLAlchemy's DATETIME writes, "2026-11-28 10:00:00.000000": the
        # delivery log binds several per row, and isoformat writes the same text at a fraction of
        # the cost of SQLAlchemy's formatting (a test holds the two together).
        def process(value: datetime | None) -> str | None:
            utc = self.process_bind_param(value, dialect)
            return None if utc is None else utc.replace(tzinfo=None).isoformat(" ", "microseconds")

        return process

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:  # noqa: ARG002 - TypeDecorator's signature
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite stores what was bound: UTC without an offset
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def describe_error(exc: sa.exc.DBAPIError) -> str:
    """The driver's one-line reason, without the SQL, its parameters or PostgreSQL's DETAIL.

    Parameters and DETAIL lines can hold row values, secrets among them.
    """
    lines = str(exc.orig).strip().splitlines()
    return lines[0] if lines else type(exc.orig).__name__
