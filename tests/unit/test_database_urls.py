"""Database URLs as hookline shows and opens them: passwords masked, SQLite paths absolute."""

from __future__ import annotations

from pathlib import Path

import pytest

from workers.subscriptions import db


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:hunter2@db/hookline", "postgresql+psycopg://app:***@db/hookline"),
        ("postgresql://db/hookline?password=hunter2", "postgresql+psycopg://db/hookline?password=***"),
        (
            "postgresql+psycopg://app@db/hookline?sslmode=require&PassWord=hunter2&sslpassword=hunter2",
            "postgresql+psycopg://app@db/hookline?PassWord=***&sslmode=require&sslpassword=***",
        ),
        ("postgresql://db/hookline?sslmode=require", "postgresql+psycopg://db/hookline?sslmode=require"),
    ],
)
def test_a_database_url_is_shown_with_every_password_masked_in_the_user_part_and_the_query(
    url: str, shown: str
) -> None:
    assert db.mask_url(url) == shown


def test_an_unparseable_database_url_is_not_repeated() -> None:
    assert db.mask_url("not a url hunter2") == "<unparseable database URL>"


def test_a_relative_sqlite_path_is_taken_from_the_working_directory_and_shown_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    assert db.normalize_url("sqlite:///data/hookline.db").database == str(tmp_path / "data" / "hookline.db")
    assert db.mask_url("sqlite:///hookline.db") == f"sqlite:///{tmp_path / 'hookline.db'}"


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file:hookline.db?mode=ro&uri=true"]
)
def test_sqlite_in_memory_or_by_uri_is_left_as_written(url: str) -> None:
    assert db.sqlite_file(db.normalize_url(url)) is None
