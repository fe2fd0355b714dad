"""Auto-disable: a subscription that keeps failing is switched off, as Svix and Standard Webhooks advise.

- 410 Gone disables it at once (reason ``gone``);
- failing continuously for ``HOOKLINE_AUTO_DISABLE_AFTER`` (5 days) disables
  it (reason ``failing``); any success resets the clock.

The clock lives in the database (``failing_since``), so every worker process
shares it and a restart keeps it. Decisions read the cached subscription, so
the database is written only on transitions (first failure after a success,
first success after failures, the disable itself), and each write is one
conditional UPDATE that is safe when many workers race. A disable is
announced (``on_disabled``, on a thread of its own so that no delivery waits
for the broker), so every other worker process stops delivering to it at once
rather than at its next periodic reload.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from workers.errors import DeliveryFailed, EndpointGone, StoreError
from workers.observability import metrics
from workers.subscriptions.store import Subscription, SubscriptionStore
from workers.vocabulary import DisabledReason


class SubscriptionHealth:
    def __init__(
        self,
        store: SubscriptionStore,
        auto_disable_after: float,
        log: FilteringBoundLogger,
        on_disabled: Callable[[], object] | None = None,
    ) -> None:
        self.store = store
        self.after = timedelta(seconds=auto_disable_after) if auto_disable_after > 0 else None
        self.log = log
        self.on_disabled = on_disabled

    def succeeded(self, subscription: Subscription) -> None:
        if subscription.failing_since is not None:
            self._write(self.store.mark_healthy, subscription.id)

    def failed(self, subscription: Subscription, failure: DeliveryFailed, now: datetime) -> None:
        if isinstance(failure, EndpointGone):
            if self._write(self.store.disable_gone, subscription.id, now):
                self._disabled(subscription, DisabledReason.GONE)
            return
        if subscription.failing_since is None:
            self._write(self.store.mark_failing, subscription.id, now)
            return
        if self.after is None:
            return
        deadline = now - self.after
        if subscription.failing_since <= deadline and self._write(
            self.store.disable_if_failing_since, subscription.id, deadline, now
        ):
            self._disabled(subscription, DisabledReason.FAILING, failing_since=subscription.failing_since)

    def _disabled(self, subscription: Subscription, reason: DisabledReason, **details: Any) -> None:
        metrics.subscription_disabled(reason)
        shown = {key: value.isoformat() for key, value in details.items()}
        self.log.warning("subscription_disabled", subscription_id=subscription.id, reason=reason, **shown)
        if self.on_disabled is not None:
            threading.Thread(target=self.on_disabled, name="announce-disabled", daemon=True).start()

    def _write(self, method: Any, *args: Any) -> Any:
        # Bookkeeping must never fail a delivery: a database hiccup only delays a disable.
        try:
            return method(*args)
        except StoreError as exc:
            self.log.warning("subscription_health_not_recorded", error=str(exc))
            return False
