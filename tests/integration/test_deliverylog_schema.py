"""The delivery log's schema: its migrations, its own version table, its daily partitions on PostgreSQL."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from support.logrecords import DAY, NOW, T0, attempt, event
from support.processes import run_json

from workers.deliverylog import partitions
from workers.deliverylog.records import DeliveryState
from workers.deliverylog.schema import ensure_log_migrated, head_revision, migrate_log
from workers.deliverylog.store import LogStore, open_log_store
from workers.deliverylog.tables import PARTITIONED, VERSION_TABLE, metadata
from workers.errors import DatabaseNotMigrated
from workers.settings import Settings
from workers.subscriptions import db, migrating

pytestmark = pytest.mark.integration

TODAY = NOW.date()


@pytest.fixture
def engine_on(database_url: str) -> Iterator[Engine]:
    engine = db.create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = db.create_engine(postgres_url)
    migrate_log(engine)
    yield engine
    engine.dispose()


def test_migrate_log_applies_its_revisions_once_then_nothing(engine_on: Engine) -> None:
    assert migrate_log(engine_on) == ["log_0001", "log_0002", "log_0003"]
    assert head_revision() == "log_0003"
    assert migrate_log(engine_on) == []


def test_the_migrated_log_matches_the_tables_the_store_queries(engine_on: Engine) -> None:
    migrate_log(engine_on)
    LogStore(engine_on, clock=lambda: NOW).write(
        [event("evt_1"), attempt("evt_1", "sub_a", 1, at=T0, state=DeliveryState.DELIVERED)]
    )

    def ours(name: str | None, kind: str, parents: dict[str, str | None]) -> bool:
        # Day partitions are the writer's, not the migration's; the version table is Alembic's.
        return kind != "table" or name in metadata.tables

    with engine_on.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "include_name": ours})
        differences = compare_metadata(context, metadata)

    assert differences == []


def test_the_log_shares_a_database_with_the_subscriptions_each_with_its_own_version(
    database_url: str, engine_on: Engine
) -> None:
    migrating.migrate(database_url)
    migrate_log(engine_on)

    migrating.ensure_migrated(engine_on)
    ensure_log_migrated(engine_on)
    with engine_on.connect() as connection:
        subscriptions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        log = connection.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar_one()  # noqa: S608 - a constant
    assert (subscriptions, log) == (migrating.head_revision(), head_revision())


def test_opening_an_unmigrated_log_tells_to_run_setup_and_names_the_database(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrating.migrate(database_url)  # the subscriptions are migrated: the log is not
    monkeypatch.setenv("HOOKLINE_DATABASE_URL", database_url)

    with pytest.raises(DatabaseNotMigrated) as caught:
        open_log_store(Settings())

    assert str(caught.value) == (
        f"delivery log database {db.mask_url(database_url)} is not migrated to the current schema: "
        "run `hookline setup`"
    )


def test_a_log_newer_than_this_code_is_refused_by_name(engine_on: Engine) -> None:
    migrate_log(engine_on)
    with engine_on.begin() as connection:
        connection.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = 'log_9999'"))  # noqa: S608 - a constant

    with pytest.raises(DatabaseNotMigrated, match="'log_9999' is unknown to this version of hookline"):
        ensure_log_migrated(engine_on)


def test_setup_migrates_a_log_database_of_its_own_readable_by_its_owner_only(
    hookline_env: dict[str, str], tmp_path: Path
) -> None:
    log_file = tmp_path / "log.db"
    env = {**hookline_env, "HOOKLINE_LOG_DATABASE_URL": f"sqlite:///{log_file}"}

    first, second = run_json(env, "setup"), run_json(env, "setup")

    assert (first["log_database"], first["log_migrations_applied"]) == (
        f"sqlite:///{log_file}",
        ["log_0001", "log_0002", "log_0003"],
    )
    assert second["log_migrations_applied"] == []
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def days_of(engine: Engine) -> dict[str, list[date]]:
    with engine.connect() as connection:
        return {table.name: sorted(partitions.existing(connection, table.name)) for table in PARTITIONED}


def test_a_write_creates_the_partitions_of_the_days_it_files_records_under(pg_engine: Engine) -> None:
    log = LogStore(pg_engine, clock=lambda: NOW)

    log.write([event("evt_1", at=T0 - 3 * DAY), event("evt_2", at=T0)])
    log.write([attempt("evt_1", "sub_a", 2, at=T0, state=DeliveryState.DELIVERED)])

    expected = [TODAY - timedelta(days=3), TODAY]
    assert days_of(pg_engine) == {table.name: expected for table in PARTITIONED}
    with pg_engine.connect() as connection:
        partition = partitions.partition_name("log_attempts", expected[0])
        filed = connection.execute(sa.text(f"SELECT count(*) FROM {partition}"))  # noqa: S608 - our own name
        assert filed.scalar_one() == 1


def test_retention_drops_whole_days_older_than_it_and_creates_today_and_tomorrow(pg_engine: Engine) -> None:
    writer = LogStore(pg_engine, retention=30 * DAY, clock=lambda: NOW)
    writer.write([event(f"evt_{age}", at=T0 - age * DAY) for age in (20, 15, 14, 13)])
    pruner = LogStore(pg_engine, retention=14 * DAY, payload_retention=13 * DAY, clock=lambda: NOW)

    report = pruner.enforce_retention()

    # The day 14 days ago also holds what is younger than 14 days: it stays, whole, until tomorrow.
    day = {age: TODAY - timedelta(days=age) for age in (20, 15, 14, 13, 0, -1)}
    assert days_of(pg_engine) == {
        **{table.name: [day[14], day[13], day[0], day[-1]] for table in PARTITIONED},
        "log_payloads": [day[13], day[0], day[-1]],
    }
    dropped = [partitions.partition_name(table.name, day[age]) for table in PARTITIONED for age in (20, 15)]
    assert sorted(report.dropped_partitions) == sorted([*dropped, f"log_payloads_{day[14]:%Y%m%d}"])
    assert writer.event("evt_14").event.payload is None
    assert writer.event("evt_13").event.payload is not None
    logged = json.loads(json.dumps(report.to_record()))  # as the recorder logs it
    assert logged["cutoff"] == (NOW - timedelta(days=14)).isoformat()


def test_a_write_for_a_day_that_retention_dropped_elsewhere_creates_it_again(pg_engine: Engine) -> None:
    writer = LogStore(pg_engine, retention=30 * DAY, clock=lambda: NOW)
    writer.write([event("evt_1", at=T0 - 20 * DAY)])
    LogStore(pg_engine, retention=14 * DAY, clock=lambda: NOW).enforce_retention()

    report = writer.write([event("evt_2", at=T0 - 20 * DAY)])

    assert report.events == 1
    assert writer.event("evt_2").event.received_at == NOW - timedelta(days=20)
