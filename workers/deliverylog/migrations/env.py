"""Alembic environment for the delivery log's migrations.

The log keeps its own version table (``hookline_log_version``), so that it can
share a database with the subscription store, whose migrations use Alembic's
default ``alembic_version``, or live in one of its own
(``HOOKLINE_LOG_DATABASE_URL``). :func:`workers.deliverylog.schema.migrate_log`
passes an open connection in ``config.attributes["connection"]``; run any
other way (``sqlalchemy.url`` set in the config), it builds its engine the way
the workers do.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from workers.deliverylog.tables import VERSION_TABLE
from workers.subscriptions.db import create_engine


def run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or pass a connection in config.attributes")
    engine = create_engine(url)
    try:
        with engine.connect() as own_connection:
            _run_with(own_connection)
    finally:
        engine.dispose()


def _run_with(connection: Connection) -> None:
    context.configure(connection=connection, transactional_ddl=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
