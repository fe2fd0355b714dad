"""Auto-disable: a subscription that keeps failing is switched off, as Svix and Standard Webhooks advise.

- 410 Gone disables it at once (reason ``gone``);
- failing continuously for ``HOOKLINE_AUTO_DISABLE_AFTER`` (5 days) disables
  it (reason ``failing``); any success resets the clock.

The clock lives in the database (``failing_since``), so every worker process
shares it and a restart keeps it. Decisions read the cached subscription, so
the database is written only on transitions (first failure after a success,
first success after failures, the disable itself), and each write is one
conditional UPDATE that is safe when many workers race.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from structlog.typing import FilteringBoundLogger

from workers.errors import DeliveryFailed, EndpointGone, StoreError
from workers.observability import metrics
from workers.subscriptions.store import Subscription, SubscriptionStore
from workers.vocabulary import DisabledReason


class SubscriptionHealth:
    def __init__(
        self, store: SubscriptionStore, auto_disable_after: float, log: FilteringBoundLogger
    ) -> None:
        self.store = store
        self.after = timedelta(seconds=auto_disable_after) if auto_disable_after > 0 else None
        self.log = log

    def succeeded(self, subscription: Subscription) -> None:
        if subscription.failing_since is not None:
            self._write(self.store.mark_healthy, subscription.id)

    def failed(self, subscription: Subscription, failure: DeliveryFailed, now: datetime) -> None:
        if isinstance(failure, EndpointGone):
            if self._write(self.store.disable_gone, subscription.id, now):
                metrics.subscription_disabled(DisabledReason.GONE)
                self.log.warning(
                    "subscription_disabled", subscription_id=subscription.id, reason=DisabledReason.GONE
                )
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
            metrics.subscription_disabled(DisabledReason.FAILING)
            self.log.warning(
                "subscription_disabled",
                subscription_id=subscription.id,
                reason=DisabledReason.FAILING,
                failing_since=subscription.failing_since.isoformat(),
            )

    def _write(self, method: Any, *args: Any) -> Any:
        # Bookkeeping must never fail a delivery: a database hiccup only delays a disable.
        try:
            return method(*args)
        except StoreError as exc:
            self.log.warning("subscription_health_not_recorded", error=str(exc))
            return False
