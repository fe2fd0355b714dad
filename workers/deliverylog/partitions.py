"""The delivery log's daily partitions on PostgreSQL: created as days come, dropped whole when old.

Every partitioned table (:data:`~workers.deliverylog.tables.PARTITIONED`) has
one partition per UTC day of ``received_at``, named ``<table>_YYYYMMDD``, and
no default partition (which would make every new day scan it). Whoever writes
records for a day first creates that day's partitions (``IF NOT EXISTS``, so
writers may race); retention drops a day's partitions once the whole day is
older than what it keeps, which costs the same for a million rows as for one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from workers.deliverylog.tables import PARTITIONED

_SUFFIX = re.compile(r"_(\d{8})$")


def day_of(moment: datetime) -> date:
    """The UTC day whose partition holds ``moment``."""
    return moment.astimezone(UTC).date()


def partition_name(table: str, day: date) -> str:
    return f"{table}_{day:%Y%m%d}"


def create(connection: Connection, days: Iterable[date]) -> None:
    """Make sure every partitioned table has a partition for each of ``days``."""
    for day in sorted(set(days)):
        start, end = (datetime.combine(each, time(), UTC).isoformat() for each in (day, day + timedelta(1)))
        for table in PARTITIONED:
            name = partition_name(table.name, day)
            connection.exec_driver_sql(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {table.name} "
                f"FOR VALUES FROM ('{start}') TO ('{end}')"
            )


def existing(connection: Connection, table: str) -> dict[date, str]:
    """The day partitions of ``table``, by day; partitions not named by this module are left out."""
    query = sa.text(
        "SELECT child.relname FROM pg_inherits "
        "JOIN pg_class parent ON parent.oid = pg_inherits.inhparent "
        "JOIN pg_class child ON child.oid = pg_inherits.inhrelid "
        "WHERE parent.relname = :table AND parent.relnamespace = to_regnamespace(current_schema())::oid"
    )
    days = {}
    for name in connection.execute(query, {"table": table}).scalars():
        match = _SUFFIX.search(name)
        if match is not None and name == partition_name(table, _parse_day(match.group(1))):
            days[_parse_day(match.group(1))] = name
    return days


def drop_older(connection: Connection, table: str, cutoff: datetime) -> list[str]:
    """Drop the partitions of ``table`` whose whole day is before ``cutoff``; their names, oldest first."""
    dropped = []
    for day, name in sorted(existing(connection, table).items()):
        if datetime.combine(day + timedelta(1), time(), UTC) <= cutoff:
            connection.exec_driver_sql(f"DROP TABLE {name}")
            dropped.append(name)
    return dropped


def _parse_day(digits: str) -> date:
    return datetime.strptime(digits, "%Y%m%d").replace(tzinfo=UTC).date()
