"""What a replay resends: the states each --state takes, fresh runs of the same webhook, the log's record."""

from __future__ import annotations

from datetime import UTC, datetime

from workers.broker.delaybatch import MAX_BYTES, retry_message
from workers.deliverylog import records
from workers.deliverylog.queries import ReplayCandidate
from workers.deliverylog.records import DeliveryState, StateRecord
from workers.ops.replay import SELECTIONS, Plan, batches, fresh_delivery, replayed_record

PAYLOAD = '{"type":"order.created","timestamp":"2025-03-01T12:00:00Z","data":{}}'


def found(event_id: str, payload: str | None = PAYLOAD) -> ReplayCandidate:
    """A dead-lettered first run, as the log offers it for replay."""
    return ReplayCandidate(
        delivery_id=f"dlv_{event_id}",
        event_id=event_id,
        subscription_id="sub_a",
        run="",
        event_type="order.created",
        event_timestamp="2025-03-01T12:00:00Z",
        payload=payload,
        received_at=datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC),
        state=DeliveryState.DEAD_LETTERED,
        attempts=8,
    )


def test_failed_means_retrying_or_dead_lettered_and_all_means_every_state() -> None:
    assert SELECTIONS["failed"] == {DeliveryState.RETRYING, DeliveryState.DEAD_LETTERED}
    assert SELECTIONS["dead"] == {DeliveryState.DEAD_LETTERED}
    assert SELECTIONS["skipped"] == {DeliveryState.SKIPPED}
    assert SELECTIONS["all"] == set(DeliveryState)


def test_a_replayed_delivery_keeps_the_webhook_and_starts_a_run_of_its_own_from_attempt_1() -> None:
    candidate = found("evt_1")

    first, second = fresh_delivery("sub_a", candidate), fresh_delivery("sub_a", candidate)

    assert (first.event_id, first.event_type, first.event_timestamp, first.payload) == (
        "evt_1",
        candidate.event_type,
        candidate.event_timestamp,
        candidate.payload,
    )
    assert (first.subscription_id, first.attempt, first.not_before) == ("sub_a", 1, None)
    assert first.run.startswith("rp_")
    assert len(first.run) == len("rp_") + 32
    assert first.run != second.run
    assert first.to_message()["run"] == first.run


def test_the_log_is_told_of_a_replay_as_a_pending_delivery_of_the_new_run() -> None:
    delivery = fresh_delivery("sub_a", found("evt_1"))

    record = replayed_record(delivery, at=1700000000.5)

    assert record == StateRecord(
        event_id="evt_1",
        subscription_id="sub_a",
        run=delivery.run,
        state=DeliveryState.PENDING,
        at=1700000000.5,
        attempts=0,
        reason="replayed",
        next_attempt_at=None,
        event_type="order.created",
    )
    assert records.decode(records.encode([record])) == [record]


def test_a_plan_sets_apart_the_events_whose_payload_the_log_no_longer_keeps() -> None:
    kept, dropped = found("evt_kept"), found("evt_dropped", payload=None)
    since = datetime(2025, 3, 1, tzinfo=UTC)

    planned = Plan("sub_a", since, None, "failed", [kept, dropped])

    assert planned.sendable == [kept]
    assert planned.without_payload == [dropped]
    record = planned.to_record()
    assert [item["event_id"] for item in record["to_send"]] == ["evt_kept"]
    assert record["without_payload"] == ["evt_dropped"]
    assert record["to_send"][0]["state"] == "dead_lettered"


def test_deliveries_go_fifty_to_a_retries_message_as_the_delay_batches_do() -> None:
    deliveries = [fresh_delivery("sub_a", found(f"evt_{n}")) for n in range(120)]

    sizes = [len(batch) for batch in batches(deliveries)]

    assert sizes == [50, 50, 20]
    assert [each for batch in batches(deliveries) for each in batch] == deliveries


def test_large_payloads_cut_a_batch_before_it_outgrows_the_delay_batches_bytes() -> None:
    mebibyte = '{"type":"order.created","timestamp":"2025-03-01T12:00:00Z","data":"' + "x" * 2**20 + '"}'
    deliveries = [fresh_delivery("sub_a", found(f"evt_{n}", payload=mebibyte)) for n in range(7)]

    sizes = [len(batch) for batch in batches(deliveries)]

    assert sizes == [3, 3, 1]
    for batch in batches(deliveries):
        message = retry_message("hookline.retries", [delivery.to_message() for delivery in batch])
        assert len(message) <= MAX_BYTES + 1024
