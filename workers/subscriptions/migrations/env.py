"""Alembic environment for hookline's migrations.

:func:`workers.subscriptions.migrating.migrate` passes an open connection in
``config.attributes["connection"]``; run any other way (``sqlalchemy.url`` set
in the config), it builds its engine the same way the workers do.
"""

from __future__ import annotations

from workers.subscriptions.migrating import run_migrations

run_migrations("alembic_version")
