"""Fixtures for tests that run hookline end to end: a receiver on loopback, worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from support.processes import Worker
from support.receiver import Receiver, receiver

from workers.subscriptions import db, migrating


@pytest.fixture
def hook_receiver() -> Iterator[Receiver]:
    with receiver() as recorder:
        yield recorder


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    """Workers a test started; each is SIGKILLed at the end if it still runs."""
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated subscription database, once on SQLite and once on PostgreSQL."""
    migrating.migrate(database_url)
    engine = db.create_engine(database_url)
    yield engine
    engine.dispose()
