"""The delivery log's writer on SQLite: every order of a delivery's records, sent twice, ends in one row.

The same behaviour runs on PostgreSQL in tests/integration/test_deliverylog_store.py; here every
permutation of a short story is tried, which is quick on a SQLite file.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from support.logrecords import NOW, T0, attempt, event, state

from workers.deliverylog.queries import StoredDelivery, decode_cursor, encode_cursor
from workers.deliverylog.records import DeliveryState, Record, delivery_id
from workers.deliverylog.schema import migrate_log
from workers.deliverylog.store import LogStore
from workers.subscriptions import db

SUB = "sub_aaaaaaaaaaaaaaaaaaaa"
# A delivery that failed twice, waited once for its busy endpoint, then was delivered.
STORY: list[Record] = [
    event("evt_1", at=T0),
    attempt("evt_1", SUB, 1, at=T0 + 1, state=DeliveryState.RETRYING, status=500),
    attempt("evt_1", SUB, 2, at=T0 + 10, state=DeliveryState.RETRYING, reason="timeout"),
    state("evt_1", SUB, DeliveryState.PENDING, at=T0 + 20, attempts=2, reason="endpoint_busy"),
    attempt("evt_1", SUB, 3, at=T0 + 30, state=DeliveryState.DELIVERED),
]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.create_engine(f"sqlite:///{tmp_path / 'log.db'}")
    migrate_log(engine)
    yield engine
    engine.dispose()


def settled(engine: Engine, batches: list[list[Record]]) -> StoredDelivery:
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM log_deliveries")
        connection.exec_driver_sql("DELETE FROM log_attempts")
    log = LogStore(engine, clock=lambda: NOW)
    for batch in batches:
        log.write(batch)
    history = log.delivery(delivery_id("evt_1", SUB))
    assert [each.attempt for each in history.attempts] == [1, 2, 3]
    return history.delivery


def test_every_order_of_a_deliverys_records_ends_in_the_same_row(engine: Engine) -> None:
    expected = settled(engine, [STORY])
    assert (expected.state, expected.attempts, expected.last_status, expected.last_reason) == (
        DeliveryState.DELIVERED,
        3,
        200,
        None,
    )

    for order in itertools.permutations(STORY[1:]):
        assert settled(engine, [[STORY[0]], *([record] for record in order)]) == expected, order


def test_a_story_sent_twice_in_two_halves_ends_in_the_same_row(engine: Engine) -> None:
    expected = settled(engine, [STORY])

    assert settled(engine, [STORY[3:], STORY, STORY[:3]]) == expected


def test_a_cursor_names_the_row_a_page_ended_on() -> None:
    last = settled_at(datetime(2026, 3, 10, 12, 0, 0, 123456, tzinfo=UTC))

    assert decode_cursor(encode_cursor(last)) == (last.received_at, last.id)


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WzEsIjIwMjYtMDMtMTAiLDJd", "WzIsIngiLCJ5Il0"])
def test_anything_but_a_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(ValueError, match="not a cursor printed by `hookline deliveries list`"):
        decode_cursor(cursor)


def settled_at(received_at: datetime) -> StoredDelivery:
    return StoredDelivery(
        id="dlv_x",
        event_id="evt_1",
        subscription_id=SUB,
        run="",
        event_type="order.created",
        state=DeliveryState.DELIVERED,
        attempts=1,
        last_status=200,
        last_reason=None,
        last_attempt_at=received_at,
        next_attempt_at=None,
        received_at=received_at,
        created_at=received_at,
        updated_at=received_at,
    )
