"""UTCDateTime on SQLite binds the text SQLAlchemy's DATETIME would bind, and reads back the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from workers.subscriptions.db import UTCDateTime

MOMENTS = [
    datetime(2026, 11, 28, 10, 0, tzinfo=UTC),  # no microseconds: still written with six digits
    datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2026, 1, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),  # next day in UTC
]


@pytest.mark.parametrize("moment", MOMENTS, ids=str)
def test_the_fast_sqlite_binding_writes_what_sqlalchemys_datetime_writes(moment: datetime) -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().bind_processor(dialect)
    sqlalchemys = sa.DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None
    assert sqlalchemys is not None
    assert ours(moment) == sqlalchemys(moment.astimezone(UTC).replace(tzinfo=None))
    assert ours(None) is None


def test_a_moment_written_to_sqlite_reads_back_as_the_same_utc_moment(tmp_path: Path) -> None:
    table = sa.Table("moments", sa.MetaData(), sa.Column("at", UTCDateTime()))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'moments.db'}")
    with engine.begin() as connection:
        table.create(connection)
        connection.execute(table.insert(), [{"at": moment} for moment in MOMENTS])
        read = connection.execute(sa.select(table.c.at)).scalars().all()
    engine.dispose()
    assert read == [moment.astimezone(UTC) for moment in MOMENTS]


def test_a_naive_datetime_is_refused() -> None:
    process = UTCDateTime().bind_processor(sqlite.dialect())
    assert process is not None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 11, 28, 10, 0))  # noqa: DTZ001 - the naive datetime under test
