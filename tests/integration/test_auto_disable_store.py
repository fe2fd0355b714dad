"""Auto-disable bookkeeping in the subscription store, on SQLite and on PostgreSQL.

The workers call these on transitions (first failure, first success, a failure
long enough, a 410), from many processes at once: each is one conditional
UPDATE that leaves ``updated_at`` to people.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from support.secrets import box_with_the_test_key

from producer.errors import ConfigurationError
from producer.settings import load
from workers.errors import EndpointGone, RetryableDeliveryFailure
from workers.observability.logs import get_logger
from workers.settings import Settings
from workers.subscriptions import db
from workers.subscriptions.autodisable import SubscriptionHealth
from workers.subscriptions.cache import SubscriptionCache
from workers.subscriptions.store import Subscription, SubscriptionStore

pytestmark = pytest.mark.integration

URL = "https://example.com/hooks"
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
FIVE_DAYS = timedelta(days=5)


@pytest.fixture
def store(engine: Engine) -> SubscriptionStore:
    return SubscriptionStore(engine, box_with_the_test_key(), clock=lambda: T0)


@pytest.fixture
def added(store: SubscriptionStore) -> Subscription:
    return store.add(URL, ["order.*"])


def failing_for(store: SubscriptionStore, subscription: Subscription, duration: timedelta) -> datetime:
    """Mark the subscription failing since T0 and return the moment ``duration`` later."""
    store.mark_failing(subscription.id, T0)
    return T0 + duration


def test_the_first_failure_records_failing_since_and_leaves_updated_at(
    store: SubscriptionStore, added: Subscription
) -> None:
    store.mark_failing(added.id, T0 + timedelta(hours=1))

    assert store.get(added.id) == replace(added, failing_since=T0 + timedelta(hours=1))


def test_later_failures_keep_the_time_the_failing_began(
    store: SubscriptionStore, added: Subscription
) -> None:
    store.mark_failing(added.id, T0)

    store.mark_failing(added.id, T0 + timedelta(days=1))

    assert store.get(added.id).failing_since == T0


def test_a_success_clears_failing_since_and_a_second_success_changes_nothing(
    store: SubscriptionStore, added: Subscription
) -> None:
    store.mark_failing(added.id, T0)

    store.mark_healthy(added.id)
    store.mark_healthy(added.id)

    assert store.get(added.id) == added


def test_a_subscription_failing_long_enough_is_disabled_once_with_reason_failing(
    store: SubscriptionStore, added: Subscription
) -> None:
    now = failing_for(store, added, FIVE_DAYS)

    assert store.disable_if_failing_since(added.id, before=now - FIVE_DAYS, now=now) is True
    assert store.disable_if_failing_since(added.id, before=now - FIVE_DAYS, now=now) is False

    disabled = store.get(added.id)
    assert (disabled.enabled, disabled.disabled_reason, disabled.disabled_at) == (False, "failing", now)
    assert (disabled.failing_since, disabled.updated_at) == (T0, added.updated_at)


def test_a_subscription_failing_for_less_than_the_limit_stays_enabled(
    store: SubscriptionStore, added: Subscription
) -> None:
    now = failing_for(store, added, FIVE_DAYS - timedelta(microseconds=1))

    assert store.disable_if_failing_since(added.id, before=now - FIVE_DAYS, now=now) is False
    assert store.get(added.id).enabled is True


def test_a_healthy_subscription_is_never_disabled_for_failing(
    store: SubscriptionStore, added: Subscription
) -> None:
    assert store.disable_if_failing_since(added.id, before=T0 + FIVE_DAYS, now=T0 + FIVE_DAYS) is False
    assert store.get(added.id) == added


def test_a_person_s_disable_is_kept_when_the_subscription_then_fails_long_enough(
    store: SubscriptionStore, added: Subscription
) -> None:
    manual = store.set_enabled(added.id, False)
    now = failing_for(store, added, FIVE_DAYS)

    assert store.disable_if_failing_since(added.id, before=now - FIVE_DAYS, now=now) is False
    assert store.disable_gone(added.id, now) is False
    assert (store.get(added.id).disabled_reason, store.get(added.id).disabled_at) == (
        "manual",
        manual.updated_at,
    )


def test_410_gone_disables_a_healthy_subscription_at_once_with_reason_gone(
    store: SubscriptionStore, added: Subscription
) -> None:
    assert store.disable_gone(added.id, T0 + timedelta(minutes=1)) is True
    assert store.disable_gone(added.id, T0 + timedelta(minutes=2)) is False

    gone = store.get(added.id)
    assert (gone.enabled, gone.disabled_reason, gone.disabled_at) == (
        False,
        "gone",
        T0 + timedelta(minutes=1),
    )
    assert gone.updated_at == added.updated_at


def test_enabling_an_auto_disabled_subscription_clears_its_record_and_restarts_the_clock(
    engine: Engine, added: Subscription
) -> None:
    store = SubscriptionStore(engine, box_with_the_test_key(), clock=lambda: T0 + timedelta(days=6))
    now = failing_for(store, added, FIVE_DAYS)
    store.disable_if_failing_since(added.id, before=now - FIVE_DAYS, now=now)

    enabled = store.set_enabled(added.id, True)

    assert enabled == replace(added, updated_at=T0 + timedelta(days=6))
    assert store.disable_if_failing_since(added.id, before=now, now=now) is False


def test_enabling_an_enabled_subscription_keeps_its_failure_clock_running(
    store: SubscriptionStore, added: Subscription
) -> None:
    store.mark_failing(added.id, T0)

    assert store.set_enabled(added.id, True).failing_since == T0


def test_disabling_a_disabled_subscription_keeps_the_first_reason(
    store: SubscriptionStore, added: Subscription
) -> None:
    store.disable_gone(added.id, T0)

    again = store.set_enabled(added.id, False)

    assert (again.disabled_reason, again.disabled_at) == ("gone", T0)


BOOKKEEPING: dict[str, Callable[[SubscriptionStore, str], object]] = {
    "mark_failing": lambda store, sub_id: store.mark_failing(sub_id, T0),
    "mark_healthy": lambda store, sub_id: store.mark_healthy(sub_id),
    "disable_if_failing_since": lambda store, sub_id: store.disable_if_failing_since(sub_id, T0, T0),
    "disable_gone": lambda store, sub_id: store.disable_gone(sub_id, T0),
}


@pytest.mark.parametrize("call", BOOKKEEPING.values(), ids=BOOKKEEPING.keys())
def test_each_bookkeeping_call_is_a_single_update_statement(
    store: SubscriptionStore,
    engine: Engine,
    added: Subscription,
    call: Callable[[SubscriptionStore, str], object],
) -> None:
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))

    call(store, added.id)

    queries = [sql for sql in statements if sql != "BEGIN"]
    assert len(queries) == 1
    assert queries[0].lstrip().startswith("UPDATE subscriptions")


@pytest.mark.parametrize("call", BOOKKEEPING.values(), ids=BOOKKEEPING.keys())
def test_bookkeeping_on_a_removed_subscription_changes_nothing_and_raises_nothing(
    store: SubscriptionStore, added: Subscription, call: Callable[[SubscriptionStore, str], object]
) -> None:
    assert call(store, "sub_removed") in (None, False)
    assert store.load_all() == [added]


def test_a_naive_datetime_is_refused_before_anything_is_written(
    store: SubscriptionStore, added: Subscription
) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        store.mark_failing(added.id, datetime(2025, 3, 1))  # noqa: DTZ001 - the naive datetime under test

    assert store.get(added.id) == added


def test_when_many_workers_race_to_disable_exactly_one_succeeds(
    database_url: str, store: SubscriptionStore, added: Subscription
) -> None:
    now = failing_for(store, added, FIVE_DAYS)
    calls: list[Callable[[SubscriptionStore], bool]] = [
        lambda worker: worker.disable_if_failing_since(added.id, before=now - FIVE_DAYS, now=now),
        lambda worker: worker.disable_gone(added.id, now),
    ] * 6

    results = _race(database_url, calls)

    assert results.count(True) == 1
    assert store.get(added.id).enabled is False


def test_when_many_workers_race_to_mark_failing_one_time_is_kept(
    database_url: str, store: SubscriptionStore, added: Subscription
) -> None:
    moments = [T0 + timedelta(seconds=n) for n in range(12)]
    calls = [lambda worker, moment=moment: worker.mark_failing(added.id, moment) for moment in moments]

    _race(database_url, calls)
    kept = store.get(added.id).failing_since
    _race(database_url, calls)

    assert kept in moments
    assert store.get(added.id).failing_since == kept


def test_the_worker_cache_sees_failure_bookkeeping_and_stops_matching_a_gone_subscription(
    store: SubscriptionStore, added: Subscription
) -> None:
    cache = SubscriptionCache(store, refresh_seconds=60)
    cache.refresh()
    store.mark_failing(added.id, T0)
    cache.refresh()

    failing = cache.get(added.id)
    store.disable_gone(added.id, T0)
    cache.refresh()

    assert failing is not None
    assert failing.failing_since == T0
    assert cache.matching("order.created") == ()


def test_the_auto_disable_setting_defaults_to_five_days_and_takes_durations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load(Settings).auto_disable_after == FIVE_DAYS.total_seconds()
    monkeypatch.setenv("HOOKLINE_AUTO_DISABLE_AFTER", "36h")
    assert load(Settings).auto_disable_after == 36 * 3600
    monkeypatch.setenv("HOOKLINE_AUTO_DISABLE_AFTER", "0")
    assert load(Settings).auto_disable_after == 0
    monkeypatch.setenv("HOOKLINE_AUTO_DISABLE_AFTER", "soon")
    with pytest.raises(ConfigurationError, match="HOOKLINE_AUTO_DISABLE_AFTER"):
        load(Settings)


def _race(database_url: str, calls: list[Callable[[SubscriptionStore], object]]) -> list[object]:
    """Run each call in its own thread with its own engine, as separate worker processes would."""
    engines = [db.create_engine(database_url) for _ in calls]
    results: list[object] = [None] * len(calls)
    errors: list[BaseException] = []
    start = threading.Barrier(len(calls))

    def run(index: int) -> None:
        try:
            start.wait()
            results[index] = calls[index](SubscriptionStore(engines[index], box_with_the_test_key()))
        except BaseException as exc:  # noqa: BLE001 - collected and re-checked in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    assert errors == []
    return results


def test_an_automatic_disable_is_announced_once_so_other_workers_stop_at_once(
    store: SubscriptionStore, added: Subscription
) -> None:
    announced: list[str] = []
    done = threading.Semaphore(0)

    def announce() -> None:
        announced.append(threading.current_thread().name)
        done.release()

    health = SubscriptionHealth(store, FIVE_DAYS.total_seconds(), get_logger(), on_disabled=announce)
    health.failed(added, EndpointGone("410 Gone", status=410), T0)
    health.failed(store.get(added.id), EndpointGone("410 Gone", status=410), T0)  # already disabled

    other = store.add(URL, ["order.*"])
    health.failed(store.get(other.id), RetryableDeliveryFailure("503", status=503), T0)
    health.failed(store.get(other.id), RetryableDeliveryFailure("503", status=503), T0 + FIVE_DAYS)

    assert done.acquire(timeout=5)
    assert done.acquire(timeout=5)
    assert not done.acquire(timeout=0.2)
    assert announced == ["announce-disabled", "announce-disabled"]  # never on the delivery's thread
