"""The subscription store on a migrated database, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workers.errors import InvalidSubscription, StoreError, SubscriptionNotFound
from workers.outbound.signing import generate_secret, secret_key
from workers.subscriptions import db, migrating
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import Subscription, SubscriptionStore

pytestmark = pytest.mark.integration

URL = "https://example.com/hooks"


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(engine: Engine, secret_box: SecretBox, clock: FakeClock) -> SubscriptionStore:
    return SubscriptionStore(engine, secret_box, clock=clock)


def test_add_stores_an_enabled_subscription_with_a_generated_secret(
    store: SubscriptionStore, clock: FakeClock
) -> None:
    added = store.add(URL, ["order.*", "invoice.paid"], description="shop")

    assert re.fullmatch(r"sub_[a-z2-7]{20}", added.id)
    assert len(secret_key(added.secret)) == 32
    assert (added.url, added.event_patterns, added.description) == (URL, ("order.*", "invoice.paid"), "shop")
    assert added.enabled is True
    assert added.previous_secret is None
    assert (added.failing_since, added.disabled_reason, added.disabled_at) == (None, None, None)
    assert added.created_at == added.updated_at == clock.now
    assert store.get(added.id) == added


def test_add_keeps_a_given_secret_and_removes_duplicate_patterns(store: SubscriptionStore) -> None:
    secret = generate_secret()

    added = store.add(URL, ["order.*", "#", "order.*"], secret=secret)

    assert store.get(added.id).secret == secret
    assert store.get(added.id).event_patterns == ("order.*", "#")


@pytest.mark.parametrize(
    ("url", "patterns", "secret", "reason"),
    [
        ("https:///hooks", ["order.*"], None, "must name a host"),
        ("ftp://example.com", ["order.*"], None, "http:// or https://"),
        ("https://u:p@example.com", ["order.*"], None, "credentials"),
        (URL, ["order.*", "ord*"], None, "must stand alone"),
        (URL, [], None, "at least one event pattern"),
        (URL, ["order.*"], "whsec_short", "secret"),
        (URL, ["order.*"], "sk_live_123", "must start with 'whsec_'"),
    ],
)
def test_add_refuses_an_invalid_field_and_writes_nothing(
    store: SubscriptionStore, url: str, patterns: list[str], secret: str | None, reason: str
) -> None:
    existing = store.add(URL, ["existing"])

    with pytest.raises(InvalidSubscription, match=re.escape(reason)):
        store.add(url, patterns, secret=secret)

    assert store.load_all() == [existing]


def test_datetimes_come_back_timezone_aware_in_utc(store: SubscriptionStore, clock: FakeClock) -> None:
    clock.now = datetime(2025, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=-5)))
    added = store.add(URL, ["order.*"])

    rotated = store.rotate_secret(added.id, grace=timedelta(hours=1))
    (loaded,) = store.load_all()

    for moment in (loaded.created_at, loaded.updated_at, rotated.previous_secret_expires_at):
        assert moment is not None
        assert moment.tzinfo is UTC
    assert loaded.created_at == datetime(2025, 3, 1, 21, 0, tzinfo=UTC)


def test_datetimes_are_utc_even_when_the_postgresql_session_uses_another_time_zone(
    postgres_url: str, secret_box: SecretBox
) -> None:
    migrating.migrate(postgres_url)
    engine = db.create_engine(postgres_url + "?options=-c%20timezone%3DAsia/Tokyo")
    try:
        added = SubscriptionStore(engine, secret_box).add(URL, ["order.*"])
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW timezone").scalar() == "Asia/Tokyo"
        loaded = SubscriptionStore(engine, secret_box).get(added.id)
    finally:
        engine.dispose()

    assert loaded.created_at.tzinfo is UTC
    assert loaded.created_at == added.created_at


def test_get_of_an_unknown_id_raises_subscription_not_found(store: SubscriptionStore) -> None:
    with pytest.raises(SubscriptionNotFound, match="no subscription with id 'sub_missing'"):
        store.get("sub_missing")


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.set_enabled("sub_missing", False),
        lambda store: store.remove("sub_missing"),
        lambda store: store.rotate_secret("sub_missing", grace=timedelta(0)),
        lambda store: store.update("sub_missing", description="x"),
    ],
    ids=["set_enabled", "remove", "rotate_secret", "update"],
)
def test_writes_to_an_unknown_id_raise_subscription_not_found(store: SubscriptionStore, call: object) -> None:
    store.add(URL, ["order.*"])

    with pytest.raises(SubscriptionNotFound):
        call(store)  # type: ignore[operator]  # parametrised lambdas are untyped


def test_list_orders_by_creation_and_filters_on_enabled(store: SubscriptionStore, clock: FakeClock) -> None:
    first = store.add(URL, ["a"])
    clock.advance(seconds=1)
    second = store.add(URL, ["b"])
    clock.advance(seconds=1)
    third = store.add(URL, ["c"])
    store.set_enabled(second.id, False)

    assert [sub.id for sub in store.list()] == [first.id, second.id, third.id]
    assert [sub.id for sub in store.list(enabled=True)] == [first.id, third.id]
    assert [sub.id for sub in store.list(enabled=False)] == [second.id]


def test_list_breaks_ties_in_creation_time_by_id(store: SubscriptionStore) -> None:
    added = [store.add(URL, ["a"]) for _ in range(5)]

    assert [sub.id for sub in store.list()] == sorted(sub.id for sub in added)


def test_set_enabled_changes_the_flag_and_updated_at_and_records_a_manual_disable(
    store: SubscriptionStore, clock: FakeClock
) -> None:
    added = store.add(URL, ["order.*"])
    later = clock.advance(minutes=5)

    disabled = store.set_enabled(added.id, False)

    assert disabled.enabled is False
    assert (disabled.disabled_reason, disabled.disabled_at) == ("manual", later)
    assert disabled.updated_at == later
    assert disabled.created_at == added.created_at
    assert (disabled.secret, disabled.event_patterns) == (added.secret, added.event_patterns)
    assert store.get(added.id) == disabled
    assert store.set_enabled(added.id, True) == replace(
        disabled, enabled=True, disabled_reason=None, disabled_at=None
    )


def test_update_changes_what_is_given_and_keeps_the_id_secret_and_state(
    store: SubscriptionStore, clock: FakeClock
) -> None:
    added = store.add(URL, ["order.*"], description="shop")
    store.set_enabled(added.id, False)
    later = clock.advance(minutes=5)

    updated = store.update(added.id, url="https://example.org/new", event_patterns=["a", "b", "a"])

    assert (updated.id, updated.secret, updated.created_at) == (added.id, added.secret, added.created_at)
    assert (updated.url, updated.event_patterns, updated.description) == (
        "https://example.org/new",
        ("a", "b"),
        "shop",
    )
    assert (updated.enabled, updated.disabled_reason, updated.updated_at) == (False, "manual", later)
    assert store.get(added.id) == updated
    assert store.update(added.id, description="").description == ""


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"url": "ftp://example.com"}, "URL must start with http"),
        ({"event_patterns": []}, "at least one event pattern"),
        ({"url": URL + "/new", "event_patterns": ["ord*"]}, "must stand alone"),
        ({"description": "x" * 1001}, "description is longer"),
        ({}, "nothing to update"),
    ],
)
def test_update_refuses_an_invalid_or_empty_change_and_writes_nothing(
    store: SubscriptionStore, change: dict[str, object], reason: str
) -> None:
    added = store.add(URL, ["order.*"])

    with pytest.raises(InvalidSubscription, match=reason):
        store.update(added.id, **change)  # type: ignore[arg-type]  # parametrised keyword arguments

    assert store.get(added.id) == added


def test_remove_deletes_only_that_subscription(store: SubscriptionStore) -> None:
    kept, removed = store.add(URL, ["a"]), store.add(URL, ["b"])

    store.remove(removed.id)

    assert store.load_all() == [kept]
    with pytest.raises(SubscriptionNotFound):
        store.get(removed.id)


def test_rotate_secret_keeps_the_old_secret_valid_for_the_grace_period(
    store: SubscriptionStore, clock: FakeClock
) -> None:
    added = store.add(URL, ["order.*"])
    clock.advance(minutes=1)

    rotated = store.rotate_secret(added.id, grace=timedelta(hours=2))

    assert rotated.secret != added.secret
    assert rotated.previous_secret == added.secret
    assert rotated.previous_secret_expires_at == clock.now + timedelta(hours=2)
    assert rotated.updated_at == clock.now
    assert rotated.active_secrets(clock.now) == (rotated.secret, added.secret)
    assert rotated.active_secrets(clock.now + timedelta(hours=2)) == (rotated.secret,)
    assert store.get(added.id) == rotated


def test_rotate_secret_with_zero_grace_drops_the_old_secret_at_once(store: SubscriptionStore) -> None:
    added = store.add(URL, ["order.*"])
    new_secret = generate_secret()

    rotated = store.rotate_secret(added.id, new_secret=new_secret, grace=timedelta(0))

    assert rotated.secret == new_secret
    assert (rotated.previous_secret, rotated.previous_secret_expires_at) == (None, None)
    assert store.get(added.id).active_secrets(datetime.now(UTC)) == (new_secret,)


def test_rotating_twice_keeps_only_the_latest_previous_secret(store: SubscriptionStore) -> None:
    added = store.add(URL, ["order.*"])
    once = store.rotate_secret(added.id, grace=timedelta(hours=1))

    twice = store.rotate_secret(added.id, grace=timedelta(hours=1))

    assert twice.previous_secret == once.secret
    assert added.secret not in twice.active_secrets(datetime.now(UTC))


@pytest.mark.parametrize(
    ("new_secret", "grace", "reason"),
    [("whsec_!!", timedelta(hours=1), "base64"), (None, timedelta(seconds=-1), "must not be negative")],
)
def test_rotate_secret_refuses_bad_input_and_changes_nothing(
    store: SubscriptionStore, new_secret: str | None, grace: timedelta, reason: str
) -> None:
    added = store.add(URL, ["order.*"])

    with pytest.raises(InvalidSubscription, match=reason):
        store.rotate_secret(added.id, new_secret=new_secret, grace=grace)

    assert store.get(added.id) == added


def test_load_all_returns_every_subscription_in_a_single_select(
    store: SubscriptionStore, engine: Engine
) -> None:
    enabled, disabled = store.add(URL, ["a"]), store.add(URL, ["b"])
    disabled = store.set_enabled(disabled.id, False)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    loaded = store.load_all()

    assert sorted(loaded, key=lambda sub: sub.id) == sorted([enabled, disabled], key=lambda sub: sub.id)
    queries = [sql for sql in statements if sql != "BEGIN"]
    assert len(queries) == 1
    assert queries[0].lstrip().startswith("SELECT")


def test_subscriptions_are_hashable_values_the_pattern_index_can_hold(store: SubscriptionStore) -> None:
    added = store.add(URL, ["order.*"])

    assert {added, store.get(added.id)} == {added}
    assert isinstance(added, Subscription)


def test_concurrent_writers_from_several_threads_all_succeed(engine: Engine, secret_box: SecretBox) -> None:
    store = SubscriptionStore(engine, secret_box)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(10):
                store.set_enabled(store.add(URL, ["order.*"]).id, False)
        except BaseException as exc:  # noqa: BLE001 - collected and re-checked in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(store.list(enabled=False)) == 80


def test_a_database_failure_becomes_a_store_error_that_never_shows_the_secret(
    database_url: str, secret_box: SecretBox
) -> None:
    engine = db.create_engine(database_url)  # never migrated: the table is missing
    secret = generate_secret()
    try:
        with pytest.raises(StoreError, match="subscription store") as caught:
            SubscriptionStore(engine, secret_box).add(URL, ["order.*"], secret=secret)
    finally:
        engine.dispose()

    assert secret not in str(caught.value)
    assert "subscriptions" in str(caught.value)
