"""Fixtures shared by unit and integration tests.

Integration tests use the real RabbitMQ and PostgreSQL on 127.0.0.1. Each test
gets its own exchange and queue prefix (so tests never see each other's
messages) and its own PostgreSQL database, and removes them afterwards.
A service that does not answer fails the test: it is never skipped.

Every test runs with ``HOOKLINE_SECRETS_KEY`` set (``support.secrets``), in this
process and in the ``hookline`` processes it starts, as a deployment would.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import psycopg
import pytest
from support.secrets import TEST_SECRETS_KEY, box_with_the_test_key

from workers.subscriptions.secretbox import SecretBox

AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_ADMIN_URL = os.environ.get("HOOKLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

# Settings a test must never inherit from the developer's shell.
_HOOKLINE_VARS = [name for name in os.environ if name.startswith("HOOKLINE_") and "_TEST_" not in name]


@pytest.fixture(autouse=True)
def _clean_hookline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _HOOKLINE_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOOKLINE_SECRETS_KEY", TEST_SECRETS_KEY)


@pytest.fixture
def secret_box() -> SecretBox:
    """The box the commands and workers under test make from HOOKLINE_SECRETS_KEY."""
    return box_with_the_test_key()


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def unique_name() -> str:
    """A short unique token for names of exchanges, queues and databases."""
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def amqp_connection(amqp_url: str) -> Iterator[pika.BlockingConnection]:
    """A plain pika connection, as any service publishing by the contract would have."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'hookline.db'}"


@pytest.fixture
def postgres_url(unique_name: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    database = f"hookline_{unique_name}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    yield f"{base}/{database}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def hookline_env(
    monkeypatch: pytest.MonkeyPatch, amqp_url: str, unique_name: str, sqlite_url: str
) -> Iterator[dict[str, str]]:
    """HOOKLINE_* settings for an isolated test: own exchange, own queues, own database.

    Set in this process's environment (for in-process code) and returned (for
    subprocesses). Every queue and the exchange are deleted afterwards.
    """
    env = {
        "HOOKLINE_AMQP_URL": amqp_url,
        "HOOKLINE_EXCHANGE": f"hookline.{unique_name}",
        "HOOKLINE_QUEUE_PREFIX": f"hookline.{unique_name}",
        "HOOKLINE_DATABASE_URL": sqlite_url,
        "HOOKLINE_SECRETS_KEY": TEST_SECRETS_KEY,
        "HOOKLINE_SUBSCRIPTION_REFRESH_SECONDS": "0.5",
        # The test receivers listen on 127.0.0.1, which the SSRF guard refuses by default.
        "HOOKLINE_ALLOW_PRIVATE_NETWORKS": "true",
        # Many workers run at once: none serves metrics unless its test picks a free port for it.
        "HOOKLINE_METRICS_PORT": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env
    from support.topology import delete_topology  # noqa: PLC0415 - only integration tests need workers

    delete_topology(amqp_url, env["HOOKLINE_EXCHANGE"], env["HOOKLINE_QUEUE_PREFIX"])
