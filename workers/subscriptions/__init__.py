"""Who gets which events: the subscription store, its in-memory cache, patterns and auto-disable.

- ``store``: subscriptions in SQL (SQLite or PostgreSQL), with their secrets;
- ``db``: engines and migrations (``migrations/``, Alembic);
- ``cache``: the per-process copy the fan-out matches against;
- ``patterns``: event-type patterns and their index;
- ``autodisable``: turning off a subscription whose endpoint keeps failing or is gone.

May import the base layer, ``observability`` and ``outbound`` (secrets); never the broker.
"""
