"""Fan-out decisions: which deliveries an event becomes, what is parked, what the delivery log is told."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from workers.broker.topology import RawEvent
from workers.deliverylog.records import DeliveryState, EventRecord, Record, StateRecord
from workers.pipeline.delivery import Delivery
from workers.pipeline.fanout import fan_out

NOW = 1_800_000_000.0


@dataclass
class Sub:
    id: str


@dataclass
class FakeCache:
    by_type: dict[str, tuple[Sub, ...]]
    disabled_by_type: dict[str, tuple[Sub, ...]] = field(default_factory=dict)

    def matching(self, event_type: str) -> tuple[Sub, ...]:
        return self.by_type.get(event_type, ())

    def matching_disabled(self, event_type: str) -> tuple[Sub, ...]:
        return self.disabled_by_type.get(event_type, ())


@dataclass
class Outbox:
    deliveries: list[Delivery] = field(default_factory=list)
    parked: list[tuple[RawEvent, str]] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)

    def run(self, raw: RawEvent, cache: FakeCache) -> int:
        return fan_out(
            raw,
            subscriptions=cache,  # type: ignore[arg-type] # what fan-out reads of the cache
            max_bytes=4096,
            deliver=lambda pairs: self.deliveries.extend(item for item, _ in pairs),
            park=lambda raw, reason: self.parked.append((raw, reason)),
            record=self.records.append,
            clock=lambda: NOW,
        )


def raw_event(event_type: str = "order.created", routing_key: str | None = None, **extra: object) -> RawEvent:
    event = {"id": "evt_1", "type": event_type, "timestamp": datetime.now(UTC).isoformat(), "data": {"n": 1}}
    body = json.dumps({**event, **extra}).encode()
    return RawEvent(body=body, routing_key=routing_key or event_type, redelivered=False)


def test_an_event_becomes_one_delivery_per_matching_subscription_sharing_one_body() -> None:
    outbox = Outbox()
    count = outbox.run(raw_event(), FakeCache({"order.created": (Sub("sub_a"), Sub("sub_b"))}))
    assert count == 2
    assert [item.subscription_id for item in outbox.deliveries] == ["sub_a", "sub_b"]
    assert outbox.deliveries[0].payload is outbox.deliveries[1].payload
    assert json.loads(outbox.deliveries[0].payload) == {
        "type": "order.created",
        "timestamp": outbox.deliveries[0].event_timestamp,
        "data": {"n": 1},
    }
    assert {item.event_id for item in outbox.deliveries} == {"evt_1"}
    assert outbox.parked == []


def test_an_event_nobody_subscribed_to_is_acked_without_deliveries() -> None:
    outbox = Outbox()
    assert outbox.run(raw_event("user.created"), FakeCache({})) == 0
    assert outbox.deliveries == []
    assert outbox.parked == []


def test_a_body_that_is_not_json_is_parked_with_its_reason() -> None:
    outbox = Outbox()
    garbage = RawEvent(body=b"\xff not json", routing_key="order.created", redelivered=False)
    assert outbox.run(garbage, FakeCache({"order.created": (Sub("sub_a"),)})) == 0
    assert outbox.deliveries == []
    [(parked, reason)] = outbox.parked
    assert parked is garbage
    assert reason


def test_an_event_whose_routing_key_is_not_its_type_is_parked() -> None:
    outbox = Outbox()
    outbox.run(raw_event("order.created", routing_key="order.deleted"), FakeCache({}))
    [(_, reason)] = outbox.parked
    assert "routing key 'order.deleted'" in reason


def test_an_event_over_the_size_limit_is_parked() -> None:
    outbox = Outbox()
    outbox.run(raw_event(data={"blob": "x" * 5000}), FakeCache({}))
    [(_, reason)] = outbox.parked
    assert "4096" in reason or "large" in reason


def test_an_event_is_recorded_once_with_its_payload_and_how_many_subscriptions_it_matched() -> None:
    outbox = Outbox()
    outbox.run(raw_event(), FakeCache({"order.created": (Sub("sub_a"), Sub("sub_b"))}))
    [event] = outbox.records
    assert isinstance(event, EventRecord)
    assert (event.id, event.type, event.matched, event.received_at) == ("evt_1", "order.created", 2, NOW)
    assert event.payload == outbox.deliveries[0].payload


def test_an_event_nobody_subscribed_to_is_recorded_as_matching_none() -> None:
    outbox = Outbox()
    outbox.run(raw_event("user.created"), FakeCache({}))
    [event] = outbox.records
    assert isinstance(event, EventRecord)
    assert event.matched == 0


def test_an_invalid_message_is_parked_and_not_recorded_as_an_event() -> None:
    outbox = Outbox()
    outbox.run(RawEvent(body=b"{}", routing_key="order.created", redelivered=False), FakeCache({}))
    assert len(outbox.parked) == 1
    assert outbox.records == []


def test_a_disabled_subscription_the_event_matches_gets_a_skipped_delivery_and_no_attempt() -> None:
    outbox = Outbox()
    cache = FakeCache({"order.created": (Sub("sub_on"),)}, {"order.created": (Sub("sub_paused"),)})
    assert outbox.run(raw_event(), cache) == 1
    assert [item.subscription_id for item in outbox.deliveries] == ["sub_on"]
    event, skipped = outbox.records
    assert isinstance(event, EventRecord)
    assert event.matched == 2
    assert isinstance(skipped, StateRecord)
    assert (skipped.subscription_id, skipped.state, skipped.reason) == (
        "sub_paused",
        DeliveryState.SKIPPED,
        "subscription_disabled",
    )
    assert (skipped.event_id, skipped.run, skipped.attempts, skipped.at) == ("evt_1", "", 0, NOW)


def test_raw_events_keep_their_bodies_out_of_log_lines() -> None:
    assert "secret-data" not in repr(RawEvent(b'{"data": "secret-data"}', "a.b", False))
