"""The delivery log's store on a migrated database, run on SQLite and on PostgreSQL: writes and queries."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.logrecords import DAY, NOW, T0, attempt, event, state

from workers.deliverylog import queries, records
from workers.deliverylog.queries import StoredDelivery
from workers.deliverylog.records import DeliveryState, Record, delivery_id
from workers.deliverylog.schema import migrate_log
from workers.deliverylog.store import LogStore
from workers.errors import InvalidSubscription, LogEntryNotFound
from workers.subscriptions import db

pytestmark = pytest.mark.integration

SUB_A, SUB_B = "sub_aaaaaaaaaaaaaaaaaaaa", "sub_bbbbbbbbbbbbbbbbbbbb"
Delivered, Retrying, Dead, Skipped, Pending = (
    DeliveryState.DELIVERED,
    DeliveryState.RETRYING,
    DeliveryState.DEAD_LETTERED,
    DeliveryState.SKIPPED,
    DeliveryState.PENDING,
)


@pytest.fixture
def log_engine(database_url: str) -> Iterator[Engine]:
    engine = db.create_engine(database_url)
    migrate_log(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def log(log_engine: Engine) -> LogStore:
    return LogStore(log_engine, clock=lambda: NOW)


def story(event_id: str = "evt_1", *, at: float = T0) -> list[Record]:
    """An event for two subscriptions: A failed once then delivered, B paused (skipped)."""
    return [
        event(event_id, at=at, matched=2),
        attempt(event_id, SUB_A, 1, at=at + 1, state=Retrying, status=503),
        attempt(event_id, SUB_A, 2, at=at + 6, state=Delivered),
        state(event_id, SUB_B, Skipped, at=at, reason="subscription_paused"),
    ]


def rows(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()  # noqa: S608 - test tables


def test_each_batch_notes_when_it_was_written_and_how_old_its_oldest_record_was(log: LogStore) -> None:
    before = log.progress()
    log.write(story(at=T0 - 90))
    log.write([])  # a write without records only asks whether the database answers

    assert (before.written_at, before.lag_seconds) == (None, None)
    assert (log.progress().written_at, log.progress().lag_seconds) == (NOW, 90.0)


def test_a_batch_written_twice_is_written_once(log: LogStore, log_engine: Engine) -> None:
    first = log.write(story())
    second = log.write(story())

    assert (first.events, first.deliveries, first.attempts, first.expired) == (1, 2, 2, 0)
    assert (second.events, second.deliveries, second.attempts, second.expired) == (0, 0, 0, 0)
    counts = {table: rows(log_engine, table) for table in ("log_events", "log_payloads", "log_attempts")}
    assert counts == {"log_events": 1, "log_payloads": 1, "log_attempts": 2}
    assert rows(log_engine, "log_deliveries") == 2


def test_a_delivery_counts_as_written_only_when_a_record_moves_it_forward(log: LogStore) -> None:
    log.write([event("evt_1", at=T0), attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Retrying, status=503)])

    stale = log.write([state("evt_1", SUB_A, Pending, at=T0 + 2, reason="endpoint_busy")])  # fewer attempts
    newer = log.write([attempt("evt_1", SUB_A, 2, at=T0 + 6, state=Delivered)])

    assert (stale.deliveries, stale.attempts) == (0, 0)
    assert (newer.deliveries, newer.attempts) == (1, 1)


def test_an_attempt_that_lasted_a_whole_number_of_seconds_is_written_beside_fractional_ones(
    log: LogStore, log_engine: Engine
) -> None:
    # JSON turns 0.0 into 0: a breaker's refusal lasts 0 s and arrives as an int among floats.
    fractional = attempt("evt_whole", "sub_a", 1, at=T0, state=DeliveryState.RETRYING, status=503)
    whole = dataclasses.replace(
        attempt("evt_whole", "sub_b", 1, at=T0, state=DeliveryState.RETRYING, reason="circuit_open"),
        duration=0,
    )
    decoded = records.decode(records.encode([event("evt_whole", at=T0), fractional, whole]))

    assert log.write(decoded).attempts == 2
    assert rows(log_engine, "log_attempts") == 2


@pytest.mark.parametrize("seed", range(4))
def test_records_in_any_order_and_any_batches_end_in_the_same_deliveries(log: LogStore, seed: int) -> None:
    records = story()
    shuffled = random.Random(seed).sample(records * 2, len(records) * 2)
    cut = random.Random(seed).randrange(1, len(shuffled))

    log.write(shuffled[:cut])
    log.write(shuffled[cut:])

    history = log.event("evt_1")
    assert [(each.delivery.subscription_id, each.delivery.state) for each in history.deliveries] == [
        (SUB_A, Delivered),
        (SUB_B, Skipped),
    ]
    delivered = history.deliveries[0]
    assert (delivered.delivery.attempts, delivered.delivery.last_status) == (2, 200)
    assert [each.attempt for each in delivered.attempts] == [1, 2]
    assert delivered.delivery.received_at == history.event.received_at


def test_a_delivery_never_goes_back_to_an_older_state(log: LogStore) -> None:
    log.write([event("evt_1"), attempt("evt_1", SUB_A, 2, at=T0 + 6, state=Delivered)])
    log.write([attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Retrying, status=503)])

    found = log.delivery(delivery_id("evt_1", SUB_A)).delivery
    assert (found.state, found.attempts, found.last_status, found.next_attempt_at) == (
        Delivered,
        2,
        200,
        None,
    )


def test_a_state_after_the_last_attempt_moves_the_delivery_on_and_keeps_the_attempts_status(
    log: LogStore,
) -> None:
    log.write([event("evt_1"), attempt("evt_1", SUB_A, 3, at=T0 + 60, state=Retrying, status=503)])
    log.write([state("evt_1", SUB_A, Dead, at=T0 + 90, attempts=3, reason="disabled")])

    found = log.delivery(delivery_id("evt_1", SUB_A)).delivery
    assert (found.state, found.attempts, found.last_status, found.last_reason) == (Dead, 3, 503, "disabled")
    assert found.last_attempt_at == NOW + timedelta(seconds=60)
    assert found.updated_at == NOW + timedelta(seconds=90)


def test_an_event_fanned_out_again_after_a_crash_is_kept_once_as_first_received(
    log: LogStore, log_engine: Engine
) -> None:
    log.write([event("evt_1", at=T0), attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Retrying, status=500)])
    again = log.write([event("evt_1", at=T0 + 30), attempt("evt_1", SUB_A, 1, at=T0 + 31, state=Delivered)])

    assert (again.events, again.attempts) == (0, 0)
    history = log.event("evt_1")
    assert history.event.received_at == NOW
    (only,) = history.deliveries
    assert [(each.attempt, each.status) for each in only.attempts] == [(1, 500)]
    assert rows(log_engine, "log_events") == 1


def test_attempts_recorded_days_later_are_filed_with_their_event(log: LogStore, log_engine: Engine) -> None:
    log.write([event("evt_1", at=T0 - 2 * DAY), attempt("evt_1", SUB_A, 1, at=T0 - 2 * DAY, state=Retrying)])
    log.write([attempt("evt_1", SUB_A, 2, at=T0, state=Delivered)])

    found = log.delivery(delivery_id("evt_1", SUB_A))
    assert [each.attempt for each in found.attempts] == [1, 2]
    with log_engine.connect() as connection:
        filed = connection.execute(sa.text("SELECT DISTINCT received_at FROM log_attempts")).scalars().all()
    assert len(filed) == 1
    assert found.delivery.received_at == NOW - timedelta(days=2)


def test_a_delivery_recorded_before_its_event_stays_one_delivery_once_the_event_comes(
    log: LogStore, log_engine: Engine
) -> None:
    log.write([attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Retrying, status=503)])
    log.write([event("evt_1", at=T0)])
    log.write([attempt("evt_1", SUB_A, 2, at=T0 + 6, state=Delivered)])

    history = log.event("evt_1")
    assert [(each.delivery.state, len(each.attempts)) for each in history.deliveries] == [(Delivered, 2)]
    assert rows(log_engine, "log_deliveries") == 1


def test_an_event_known_only_from_its_attempts_has_its_type_until_its_own_record_completes_it(
    log: LogStore,
) -> None:
    log.write([attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Delivered, event_type="order.paid")])
    early = log.event("evt_1").event

    completed = log.write([event("evt_1", at=T0, event_type="order.paid")])
    again = log.write([event("evt_1", at=T0, event_type="order.paid")])

    assert (early.type, early.matched, early.timestamp, early.payload) == ("order.paid", None, "", None)
    assert (completed.events, again.events) == (1, 0)
    late = log.event("evt_1").event
    assert (late.matched, late.timestamp) == (1, "2026-03-10T11:59:59Z")
    assert late.payload == event("evt_1", event_type="order.paid").payload
    assert late.received_at == early.received_at == NOW + timedelta(seconds=1)


def test_an_event_that_matched_no_subscription_is_recorded_with_no_deliveries(log: LogStore) -> None:
    log.write([event("evt_lonely", matched=0)])

    history = log.event("evt_lonely")
    assert (history.event.matched, history.deliveries) == (0, ())
    assert history.event.payload is not None
    assert '"event":"evt_lonely"' in history.event.payload


def test_records_older_than_the_retention_are_not_written(log: LogStore, log_engine: Engine) -> None:
    old = T0 - 15 * DAY
    report = log.write([event("evt_old", at=old), attempt("evt_old", SUB_A, 1, at=old, state=Delivered)])

    assert (report.events, report.deliveries, report.attempts, report.expired) == (0, 0, 0, 2)
    assert rows(log_engine, "log_events") == 0


def test_a_replay_is_a_delivery_of_its_own_beside_the_run_it_replays(log: LogStore) -> None:
    log.write([event("evt_1"), attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Dead, status=410)])
    log.write([state("evt_1", SUB_A, Pending, at=T0 + 100, run="rp_1", reason="replayed")])
    log.write([attempt("evt_1", SUB_A, 1, at=T0 + 101, state=Delivered, run="rp_1")])

    history = log.event("evt_1")
    assert [(each.delivery.run, each.delivery.state) for each in history.deliveries] == [
        ("", Dead),
        ("rp_1", Delivered),
    ]
    assert [len(each.attempts) for each in history.deliveries] == [1, 1]


def test_a_delivery_is_shown_with_every_attempt_and_its_event(log: LogStore) -> None:
    records = [*story(), attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Retrying, status=503, response="busy")]
    log.write(records)

    found = log.delivery(delivery_id("evt_1", SUB_A))

    assert found.event is not None
    assert (found.event.id, found.event.type) == ("evt_1", "order.created")
    first, second = found.attempts
    assert (first.id, first.status, first.state, first.error) == (
        f"{found.delivery.id}.1",
        503,
        Retrying,
        "attempt 1 failed",
    )
    assert first.next_attempt_at == NOW + timedelta(seconds=6)
    assert (second.status, second.reason, second.state, second.next_attempt_at) == (
        200,
        None,
        Delivered,
        None,
    )


def test_an_unknown_event_or_delivery_is_not_found(log: LogStore) -> None:
    log.write(story())

    with pytest.raises(LogEntryNotFound, match="no event with id 'evt_nope' in the delivery log"):
        log.event("evt_nope")
    with pytest.raises(LogEntryNotFound, match="no delivery with id 'dlv_nope' in the delivery log"):
        log.delivery("dlv_nope")


def many(log: LogStore) -> list[StoredDelivery]:
    """Seven deliveries a minute apart: order.created/.paid/invoice.sent, two subscriptions, all states."""
    plan = [
        ("order.created", SUB_A, Delivered),
        ("order.paid", SUB_B, Retrying),
        ("invoice.sent", SUB_A, Dead),
        ("order.created", SUB_B, Skipped),
        ("order.paid", SUB_A, Delivered),
        ("invoice.sent", SUB_B, Delivered),
        ("order.created.eu", SUB_A, Retrying),
    ]
    records: list[Record] = []
    for number, (event_type, subscription, outcome) in enumerate(plan):
        at = T0 - 3600 + 60 * number
        records.append(event(f"evt_{number}", at=at, event_type=event_type))
        if outcome is Skipped:
            records.append(state(f"evt_{number}", subscription, Skipped, at=at, event_type=event_type))
        else:
            records.append(
                attempt(f"evt_{number}", subscription, 1, at=at, state=outcome, event_type=event_type)
            )
    log.write(records)
    return list(log.deliveries(limit=100).deliveries)


def test_deliveries_are_listed_newest_first_a_page_at_a_time(log: LogStore) -> None:
    everything = many(log)
    pages, cursor = [], None
    while True:
        page = log.deliveries(limit=3, cursor=cursor)
        pages.append([each.event_id for each in page.deliveries])
        cursor = page.next_cursor
        if cursor is None:
            break

    assert [each.event_id for each in everything] == [f"evt_{number}" for number in range(6, -1, -1)]
    assert pages == [["evt_6", "evt_5", "evt_4"], ["evt_3", "evt_2", "evt_1"], ["evt_0"]]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"subscription_id": SUB_B}, ["evt_5", "evt_3", "evt_1"]),
        ({"state": Retrying}, ["evt_6", "evt_1"]),
        ({"event_type_pattern": "order.paid"}, ["evt_4", "evt_1"]),
        ({"event_type_pattern": "order.*"}, ["evt_4", "evt_3", "evt_1", "evt_0"]),
        ({"event_type_pattern": "order.#"}, ["evt_6", "evt_4", "evt_3", "evt_1", "evt_0"]),
        ({"event_type_pattern": "*.sent"}, ["evt_5", "evt_2"]),
        ({"event_type_pattern": "#"}, ["evt_6", "evt_5", "evt_4", "evt_3", "evt_2", "evt_1", "evt_0"]),
        ({"subscription_id": SUB_A, "event_type_pattern": "order.*", "state": Delivered}, ["evt_4", "evt_0"]),
        # A subscription and a type, no state: read state by state, merged in page order.
        ({"subscription_id": SUB_B, "event_type_pattern": "order.*"}, ["evt_3", "evt_1"]),
        ({"subscription_id": SUB_A, "event_type_pattern": "#"}, ["evt_6", "evt_4", "evt_2", "evt_0"]),
        ({"subscription_id": SUB_A, "event_type_pattern": "invoice.paid"}, []),
        ({"since": NOW - timedelta(minutes=58)}, ["evt_6", "evt_5", "evt_4", "evt_3", "evt_2"]),
        ({"until": NOW - timedelta(minutes=58)}, ["evt_1", "evt_0"]),
    ],
)
def test_each_filter_selects_only_the_deliveries_it_names(
    log: LogStore, filters: dict[str, object], expected: list[str]
) -> None:
    many(log)

    page = log.deliveries(**filters)  # type: ignore[arg-type]

    assert [each.event_id for each in page.deliveries] == expected


def test_a_filtered_listing_pages_through_the_same_filter(log: LogStore) -> None:
    many(log)

    first = log.deliveries(event_type_pattern="order.#", limit=2)
    second = log.deliveries(event_type_pattern="order.#", limit=2, cursor=first.next_cursor)

    assert [each.event_id for each in first.deliveries + second.deliveries] == [
        "evt_6",
        "evt_4",
        "evt_3",
        "evt_1",
    ]


def test_a_subscriptions_types_in_every_state_page_newest_first(log: LogStore) -> None:
    many(log)

    first = log.deliveries(subscription_id=SUB_A, event_type_pattern="#", limit=3)
    second = log.deliveries(subscription_id=SUB_A, event_type_pattern="#", limit=3, cursor=first.next_cursor)

    assert [each.event_id for each in first.deliveries] == ["evt_6", "evt_4", "evt_2"]
    assert [each.event_id for each in second.deliveries] == ["evt_0"]
    assert second.next_cursor is None


def test_a_pattern_that_matches_no_logged_type_finds_nothing(log: LogStore) -> None:
    many(log)

    assert log.deliveries(event_type_pattern="refund.*") == queries.DeliveryPage((), None)


def test_a_bad_pattern_cursor_or_limit_is_refused(log: LogStore) -> None:
    with pytest.raises(InvalidSubscription, match="must stand alone"):
        log.deliveries(event_type_pattern="ord*")
    with pytest.raises(ValueError, match="not a cursor printed by `hookline deliveries list`"):
        log.deliveries(cursor="bm90IGEgY3Vyc29y")
    with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
        log.deliveries(limit=0)


def test_replay_candidates_are_each_events_latest_run_in_the_range(log: LogStore) -> None:
    # Five dead deliveries 100 s apart; evt_3 went to the other subscription; evt_1 was replayed.
    records: list[Record] = []
    for number in range(5):
        at = T0 - 600 + 100 * number
        subscription = SUB_B if number == 3 else SUB_A
        records += [
            event(f"evt_{number}", at=at),
            attempt(f"evt_{number}", subscription, 1, at=at, state=Dead),
        ]
    records += [
        state("evt_1", SUB_A, Pending, at=T0, run="rp_1", reason="replayed"),
        attempt("evt_1", SUB_A, 1, at=T0 + 1, state=Delivered, run="rp_1"),
    ]
    log.write(records)
    since, until = NOW - timedelta(seconds=550), NOW - timedelta(seconds=250)

    dead = log.replay_candidates(SUB_A, since, until, {Dead})
    every = log.replay_candidates(SUB_A, since, None, None)

    assert [(each.event_id, each.run, each.state) for each in dead] == [("evt_2", "", Dead)]
    assert [(each.event_id, each.run) for each in every] == [("evt_1", "rp_1"), ("evt_2", ""), ("evt_4", "")]
    assert every[0].payload is not None
    assert every[0].payload == event("evt_1").payload
    assert (every[0].event_type, every[0].event_timestamp) == ("order.created", "2026-03-10T11:59:59Z")
    assert every[0].received_at == NOW - timedelta(seconds=500)


def test_replay_candidates_are_read_in_chunks_without_splitting_an_events_runs(
    log: LogStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    records: list[Record] = []
    for number in range(7):
        at = T0 - 600 + 10 * number
        records += [event(f"evt_{number}", at=at), attempt(f"evt_{number}", SUB_A, 1, at=at, state=Dead)]
        for later, run in enumerate(("rp_a", "rp_b")[: number % 3], start=1):
            records.append(state(f"evt_{number}", SUB_A, Pending, at=at + later, run=run))
    log.write(records)
    monkeypatch.setattr(queries, "REPLAY_CHUNK", 2)

    found = log.replay_candidates(SUB_A, NOW - timedelta(hours=1), None, None)

    assert [each.event_id for each in found] == [f"evt_{number}" for number in range(7)]
    assert [each.run for each in found] == ["", "rp_a", "rp_b", "", "rp_a", "rp_b", ""]


def test_payloads_past_their_retention_are_forgotten_and_the_rest_kept(log_engine: Engine) -> None:
    log = LogStore(log_engine, payload_retention=2 * DAY, clock=lambda: NOW)
    log.write([*story("evt_old", at=T0 - 5 * DAY), *story("evt_new", at=T0)])

    log.enforce_retention()

    old, new = log.event("evt_old"), log.event("evt_new")
    assert (old.event.payload, len(old.deliveries)) == (None, 2)
    assert new.event.payload is not None
    assert [candidate.payload for candidate in log.replay_candidates(SUB_A, NOW - timedelta(days=6))] == [
        None,
        new.event.payload,
    ]


def test_retention_forgets_events_deliveries_and_attempts_older_than_it(log_engine: Engine) -> None:
    writer = LogStore(log_engine, retention=30 * DAY, clock=lambda: NOW)
    writer.write([*story("evt_old", at=T0 - 20 * DAY), *story("evt_new", at=T0 - DAY)])

    report = LogStore(log_engine, retention=14 * DAY, clock=lambda: NOW).enforce_retention()

    assert report.cutoff == NOW - timedelta(days=14)
    with pytest.raises(LogEntryNotFound):
        writer.event("evt_old")
    assert len(writer.event("evt_new").deliveries) == 2
    for table, left in {"log_events": 1, "log_payloads": 1, "log_deliveries": 2, "log_attempts": 2}.items():
        assert rows(log_engine, table) == left, table


def test_deliveries_are_counted_by_state_for_the_events_received_since_a_moment(log: LogStore) -> None:
    hour = 3600.0
    log.write(
        [
            event("evt_old", at=T0 - 2 * hour),
            attempt("evt_old", "sub_a", 1, at=T0 - 2 * hour, state=DeliveryState.DELIVERED),
            *(event(f"evt_{n}", at=T0 - 60) for n in range(3)),
            attempt("evt_0", "sub_a", 1, at=T0 - 60, state=DeliveryState.DELIVERED),
            attempt("evt_1", "sub_a", 1, at=T0 - 60, state=DeliveryState.DELIVERED),
            attempt("evt_2", "sub_a", 1, at=T0 - 60, state=DeliveryState.RETRYING, status=503),
        ]
    )

    assert log.states_since(NOW - timedelta(hours=1)) == {"delivered": 2, "retrying": 1}
    assert log.states_since(NOW) == {}
