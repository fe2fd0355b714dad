"""Engines and migrations: the packaged Alembic scripts create the schema the store uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from workers.api.tables import metadata as api_tables
from workers.errors import DatabaseNotMigrated, StoreError
from workers.outbound.signing import generate_secret
from workers.subscriptions import db, migrating
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore, metadata, subscriptions_table

pytestmark = pytest.mark.integration


def test_migrate_applies_every_revision_once_then_nothing(database_url: str) -> None:
    assert migrating.migrate(database_url) == ["0001", "0002", "0003", "0004"]
    assert migrating.head_revision() == "0004"
    assert migrating.migrate(database_url) == []


def test_migrate_needs_no_alembic_ini_in_the_working_directory(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    assert migrating.migrate(database_url) == ["0001", "0002", "0003", "0004"]


def test_the_migrated_schema_matches_the_tables_the_store_and_the_api_query(database_url: str) -> None:
    migrating.migrate(database_url)
    engine = db.create_engine(database_url)
    every_table = sa.MetaData()
    for table in (*metadata.tables.values(), *api_tables.tables.values()):
        table.to_metadata(every_table)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, every_table)
    finally:
        engine.dispose()

    assert differences == []


def test_ensure_migrated_tells_to_run_setup_on_an_empty_database_and_names_it(database_url: str) -> None:
    engine = db.create_engine(database_url)
    try:
        with pytest.raises(DatabaseNotMigrated) as caught:
            migrating.ensure_migrated(engine)
    finally:
        engine.dispose()

    where = db.mask_url(database_url)
    assert (
        str(caught.value) == f"database {where} is not migrated to the current schema: run `hookline setup`"
    )


def test_ensure_migrated_passes_once_migrated_with_a_single_query(database_url: str) -> None:
    migrating.migrate(database_url)
    engine = db.create_engine(database_url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        migrating.ensure_migrated(engine)
    finally:
        engine.dispose()

    assert [sql for sql in statements if sql != "BEGIN"] == ["SELECT version_num FROM alembic_version"]


def test_ensure_migrated_refuses_a_schema_newer_than_this_code(database_url: str) -> None:
    migrating.migrate(database_url)
    engine = db.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(DatabaseNotMigrated, match="'9999' is unknown to this version of hookline"):
            migrating.ensure_migrated(engine)
    finally:
        engine.dispose()


def test_a_plain_postgresql_url_is_served_by_psycopg_3(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)

    assert migrating.migrate(plain) == ["0001", "0002", "0003", "0004"]
    assert db.create_engine(plain).dialect.driver == "psycopg"


def test_migrate_reports_an_unreachable_database_without_its_password() -> None:
    with pytest.raises(StoreError, match="cannot migrate") as caught:
        migrating.migrate("postgresql://hookline:hunter2@127.0.0.1:1/hookline")

    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" in str(caught.value)


def test_a_sqlite_engine_writes_ahead_and_waits_for_locks(sqlite_url: str) -> None:
    engine = db.create_engine(sqlite_url)
    try:
        with engine.connect() as connection:
            journal = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
            busy_ms = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
    finally:
        engine.dispose()

    assert journal == "wal"
    assert busy_ms == db.SQLITE_BUSY_TIMEOUT_SECONDS * 1000


def test_a_failed_sqlite_migration_leaves_no_half_created_schema(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fail after the DDL, when Alembic records the version: the table must vanish with the rollback.
    def fail(*args: object, **kwargs: object) -> None:
        raise sa.exc.OperationalError("UPDATE alembic_version", {}, Exception("disk full"))

    monkeypatch.setattr("alembic.runtime.migration.HeadMaintainer.update_to_step", fail)

    with pytest.raises(StoreError, match="disk full"):
        migrating.migrate(sqlite_url)

    engine = db.create_engine(sqlite_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


CREATED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
LEGACY_SECRET = generate_secret()  # stored in plaintext, as every release before 0003 did
_COLUMNS_AT_0001 = ("id", "url", "event_patterns", "secret", "enabled", "created_at", "updated_at")
_RENAMED_BY_0003 = {"secret": "encrypted_secret"}


@pytest.fixture
def at_0001(database_url: str) -> Iterator[sa.Engine]:
    """A database migrated to 0001 only, holding two subscriptions, one of them disabled."""
    command.upgrade(migrating.SUBSCRIPTIONS.config(database_url), "0001")
    engine = db.create_engine(database_url)
    types = {name: subscriptions_table.c[_RENAMED_BY_0003.get(name, name)].type for name in _COLUMNS_AT_0001}
    table = sa.table("subscriptions", *(sa.column(name, types[name]) for name in _COLUMNS_AT_0001))
    common = {
        "url": "https://example.com/hooks",
        "secret": LEGACY_SECRET,
        "created_at": CREATED,
        "updated_at": CREATED,
    }
    with engine.begin() as connection:
        connection.execute(
            sa.insert(table),
            [
                {**common, "id": "sub_one", "event_patterns": ["order.*"], "enabled": True},
                {**common, "id": "sub_two", "event_patterns": ["#"], "enabled": False},
            ],
        )
    yield engine
    engine.dispose()


def test_ensure_migrated_reports_a_database_at_0001_as_not_migrated(at_0001: sa.Engine) -> None:
    with pytest.raises(DatabaseNotMigrated, match="run `hookline setup`"):
        migrating.ensure_migrated(at_0001)


def test_upgrading_0001_to_the_head_keeps_every_row_with_its_plaintext_secret_readable(
    database_url: str, at_0001: sa.Engine, secret_box: SecretBox
) -> None:
    assert migrating.migrate(database_url) == ["0002", "0003", "0004"]

    migrating.ensure_migrated(at_0001)
    loaded = SubscriptionStore(at_0001, secret_box).load_all()
    assert [(sub.id, sub.event_patterns, sub.enabled) for sub in loaded] == [
        ("sub_one", ("order.*",), True),
        ("sub_two", ("#",), False),
    ]
    assert {(sub.failing_since, sub.disabled_reason, sub.disabled_at) for sub in loaded} == {
        (None, None, None)
    }
    assert {(sub.created_at, sub.updated_at) for sub in loaded} == {(CREATED, CREATED)}
    assert {sub.secret for sub in loaded} == {LEGACY_SECRET}


def test_setup_s_re_encryption_encrypts_the_plaintext_secrets_of_an_upgraded_database_once(
    database_url: str, at_0001: sa.Engine, secret_box: SecretBox
) -> None:
    migrating.migrate(database_url)
    store = SubscriptionStore(at_0001, secret_box)

    first, second = store.reseal_secrets(), store.reseal_secrets()

    assert (first.subscriptions, first.resealed) == (2, 2)
    assert (second.subscriptions, second.resealed) == (2, 0)
    with at_0001.connect() as connection:
        stored = connection.execute(sa.text("SELECT encrypted_secret FROM subscriptions")).scalars().all()
    assert len(stored) == 2
    assert not any(LEGACY_SECRET in value for value in stored)
    assert {sub.secret for sub in store.load_all()} == {LEGACY_SECRET}


def test_downgrading_to_0001_drops_the_new_columns_and_keeps_the_rows_and_their_plaintext_secrets(
    database_url: str, at_0001: sa.Engine, secret_box: SecretBox
) -> None:
    migrating.migrate(database_url)
    SubscriptionStore(at_0001, secret_box).disable_gone("sub_one", datetime.now(UTC))

    command.downgrade(migrating.SUBSCRIPTIONS.config(database_url), "0001")

    columns = {column["name"] for column in sa.inspect(at_0001).get_columns("subscriptions")}
    assert not columns & {"failing_since", "disabled_reason", "disabled_at", "encrypted_secret"}
    with at_0001.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, enabled, secret FROM subscriptions ORDER BY id")).all()
    assert [(row.id, bool(row.enabled), row.secret) for row in rows] == [
        ("sub_one", False, LEGACY_SECRET),
        ("sub_two", False, LEGACY_SECRET),
    ]


def test_downgrading_below_0003_is_refused_while_secrets_are_encrypted_and_changes_nothing(
    database_url: str, at_0001: sa.Engine, secret_box: SecretBox
) -> None:
    migrating.migrate(database_url)
    SubscriptionStore(at_0001, secret_box).reseal_secrets()

    with pytest.raises(RuntimeError, match="some signing secrets are encrypted"):
        command.downgrade(migrating.SUBSCRIPTIONS.config(database_url), "0002")

    engine = db.create_engine(database_url)
    try:
        migrating.ensure_migrated(engine)  # still at the head
    finally:
        engine.dispose()
