"""The subscription cache reloads at once when told of a change, and knows how old its snapshot is."""

from __future__ import annotations

import threading
from typing import Any

from workers.errors import StoreError
from workers.subscriptions.cache import SubscriptionCache

A_LONG_TIME = 3600.0  # the periodic reload never comes within a test


class Store:
    """Counts reloads; fails them while ``down``."""

    def __init__(self) -> None:
        self.loads = 0
        self.down = False
        self.loaded = threading.Event()

    def load_all(self) -> list[Any]:
        if self.down:
            raise StoreError("database unreachable")
        self.loads += 1
        self.loaded.set()
        return []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_change_announced_reloads_the_subscriptions_at_once_not_at_the_next_period() -> None:
    store = Store()
    cache = SubscriptionCache(store, A_LONG_TIME)  # type: ignore[arg-type] # the store's reading half
    cache.start()
    try:
        store.loaded.clear()
        cache.refresh_soon()
        assert store.loaded.wait(timeout=5), "no reload after refresh_soon"
        assert store.loads == 2
    finally:
        cache.stop()


def test_the_snapshot_age_grows_while_the_database_is_down_and_is_reported_each_time() -> None:
    store, clock, ages = Store(), Clock(), []
    reported = threading.Event()

    def tick(age: float) -> None:
        ages.append(age)
        reported.set()

    cache = SubscriptionCache(store, A_LONG_TIME, on_tick=tick, clock=clock)  # type: ignore[arg-type]
    cache.start()
    try:
        store.down = True
        clock.now += 90.0
        cache.refresh_soon()
        assert reported.wait(timeout=5)
        assert cache.age() == 90.0
        assert ages == [90.0]
        store.down = False
        reported.clear()
        cache.refresh_soon()
        assert reported.wait(timeout=5)
        assert ages[-1] == 0.0  # a reload that worked makes the snapshot new again
    finally:
        cache.stop()
