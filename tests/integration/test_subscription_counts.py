"""Subscriptions counted by state (for /metrics and `hookline status`), on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import STATES, SubscriptionStore

pytestmark = pytest.mark.integration

URL = "https://example.com/hooks"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_subscriptions_are_counted_by_state(engine: Engine, secret_box: SecretBox) -> None:
    store = SubscriptionStore(engine, secret_box)
    assert store.count_by_state() == dict.fromkeys(STATES, 0)
    _, failing, stopped, gone, given_up = (store.add(URL, ["#"]) for _ in range(5))
    store.add(URL, ["order.*"])
    store.mark_failing(failing.id, NOW)
    store.set_enabled(stopped.id, enabled=False)
    store.disable_gone(gone.id, NOW)
    store.mark_failing(given_up.id, NOW)
    store.disable_if_failing_since(given_up.id, NOW, NOW)

    assert store.count_by_state() == {
        "healthy": 2,
        "failing": 1,
        "disabled_failing": 1,
        "disabled_gone": 1,
        "disabled_manual": 1,
    }
