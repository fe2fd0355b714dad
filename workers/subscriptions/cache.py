"""The worker's in-memory view of the subscriptions, refreshed in the background.

Fan-out reads this cache on every event and never queries the database. A
daemon thread reloads all subscriptions every
``HOOKLINE_SUBSCRIPTION_REFRESH_SECONDS`` (one SELECT) and swaps in a new
immutable snapshot, so readers never lock. Secrets are decrypted there, by the
store, and only those that changed since the last reload: a delivery signs with
the snapshot's secrets and never decrypts. If the database is unreachable, or
``HOOKLINE_SECRETS_KEY`` cannot decrypt a secret, the last snapshot stays in
use and the failure is logged.

A change announced on the broker (:mod:`workers.broker.changes`) wakes the
thread at once (:meth:`refresh_soon`), so a new subscription is matched within
moments instead of at the next reload. :meth:`age` is how long ago the
snapshot in use was loaded: a database that stays unreachable shows there (and
in ``hookline_subscriptions_snapshot_age_seconds``), not only in the log.

Different worker processes refresh at different moments, so a delivery can
name a subscription this process has not loaded yet: :meth:`get` falls back to
the database for that one row.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from workers.errors import SubscriptionNotFound
from workers.observability.logs import get_logger
from workers.subscriptions.patterns import PatternIndex
from workers.subscriptions.store import Subscription, SubscriptionStore

log = get_logger(component="subscription_cache")


@dataclass(frozen=True)
class Snapshot:
    subscriptions: tuple[Subscription, ...]
    by_id: dict[str, Subscription] = field(init=False)
    index: PatternIndex[Subscription] = field(init=False)
    disabled_index: PatternIndex[Subscription] = field(init=False)

    def __post_init__(self) -> None:
        # frozen: set derived fields once, here.
        object.__setattr__(self, "by_id", {sub.id: sub for sub in self.subscriptions})
        for name, enabled in (("index", True), ("disabled_index", False)):
            chosen = [sub for sub in self.subscriptions if sub.enabled is enabled]
            pairs = ((pattern, sub) for sub in chosen for pattern in sub.event_patterns)
            object.__setattr__(self, name, PatternIndex(pairs))


class SubscriptionCache:
    def __init__(
        self,
        store: SubscriptionStore,
        refresh_seconds: float,
        *,
        on_tick: Callable[[float], None] = lambda _age: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._refresh_seconds = refresh_seconds
        self._snapshot = Snapshot(())
        self._loaded_at = clock()
        self._stopped = threading.Event()
        self._wake = threading.Event()  # a change was announced, or the cache stops
        self._thread: threading.Thread | None = None
        self._on_tick = on_tick  # told the snapshot's age after every reload or failed one
        self._clock = clock

    @property
    def store(self) -> SubscriptionStore:
        return self._store

    def start(self) -> None:
        """Load once (failing loudly if the database is unusable), then refresh in the background."""
        self._snapshot = Snapshot(tuple(self._store.load_all()))
        self._loaded_at = self._clock()
        self._thread = threading.Thread(target=self._refresh_forever, name="subscription-cache", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def refresh_soon(self) -> None:
        """Reload now, on the cache's own thread: subscriptions changed (safe from any thread)."""
        self._wake.set()

    def age(self) -> float:
        """Seconds since the snapshot in use was loaded."""
        return self._clock() - self._loaded_at

    def matching(self, event_type: str) -> tuple[Subscription, ...]:
        """The enabled subscriptions whose patterns match ``event_type``."""
        return self._snapshot.index.match(event_type)

    def matching_disabled(self, event_type: str) -> tuple[Subscription, ...]:
        """The disabled (paused) subscriptions whose patterns match: the delivery log records them skipped."""
        return self._snapshot.disabled_index.match(event_type)

    def get(self, subscription_id: str) -> Subscription | None:
        """The subscription, or None if it was removed."""
        found = self._snapshot.by_id.get(subscription_id)
        if found is not None:
            return found
        try:
            return self._store.get(subscription_id)
        except SubscriptionNotFound:
            return None

    def refresh(self) -> None:
        loaded = tuple(self._store.load_all())
        self._loaded_at = self._clock()
        # Keep the old snapshot when nothing changed: its match memo stays warm.
        if loaded != self._snapshot.subscriptions:
            self._snapshot = Snapshot(loaded)
            log.info("subscriptions_reloaded", count=len(loaded))

    def _refresh_forever(self) -> None:
        while True:
            self._wake.wait(self._refresh_seconds)
            self._wake.clear()  # before the reload: a change announced during it wakes the next one
            if self._stopped.is_set():
                return
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - any failure must leave the last good snapshot serving
                log.warning("subscriptions_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            self._on_tick(self.age())
