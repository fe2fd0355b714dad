"""The log messages workers publish: the recorder's format, byte for byte, and sized for batching."""

from __future__ import annotations

import json

import pytest

from workers.broker.recordbatch import approximate_size, encode
from workers.deliverylog import records
from workers.deliverylog.records import AttemptRecord, DeliveryState, EventRecord, Record, StateRecord

PAYLOAD = json.dumps({"type": "order.created", "timestamp": "t", "data": {"note": 'a "quote" and ✓ 🎉'}})


def event(n: int) -> EventRecord:
    return EventRecord(f"evt_{n}", "order.created", "2026-11-28T10:00:00+00:00", PAYLOAD, 1.5, 2)


def attempt(n: int) -> AttemptRecord:
    return AttemptRecord(
        event_id=f"evt_{n}",
        subscription_id="sub_a",
        run="",
        attempt=1,
        started_at=1.5,
        duration=0.02,
        status=503,
        reason="http_status",
        error="HTTP 503",
        response_body='{"error": "down ✗"}',
        state=DeliveryState.RETRYING,
        next_attempt_at=6.5,
        event_type="order.created",
    )


def state(n: int) -> StateRecord:
    return StateRecord(
        f"evt_{n}", "sub_b", "rp_1", DeliveryState.SKIPPED, 1.5, 0, "subscription_disabled", None, "x"
    )


def actor_messages() -> list[list[Record]]:
    return [[event(n), attempt(n), state(n)] for n in range(3)]


def test_a_log_message_is_what_the_records_module_encodes_for_every_record_of_every_actor_message() -> None:
    items = actor_messages()
    flat = [record for item in items for record in item]
    assert encode(items) == records.encode(flat)
    assert records.decode(encode(items)) == flat


def test_the_size_a_batch_is_cut_by_is_never_less_than_what_the_records_encode_to() -> None:
    for item in actor_messages():
        assert approximate_size(item) >= len(records.encode(item))


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"v": 2, "records": []}',
        b'{"v": 1}',
        b'{"v": 1, "records": [1, 2]}',
        b'{"v": 1, "records": [["a"]]}',
        b'{"v": 1, "records": [{"kind": "mystery"}]}',
        b'{"v": 1, "records": [{"kind": "event", "id": "evt_1"}]}',
        b"\xff\xfe",
    ],
)
def test_anything_but_a_log_message_is_a_value_error_the_recorder_can_park(body: bytes) -> None:
    with pytest.raises(ValueError, match=r"log message|unknown record kind"):
        records.decode(body)
