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

from workers.deliverylog.tables import VERSION_TABLE
from workers.subscriptions.migrating import run_migrations

run_migrations(VERSION_TABLE)
