"""The recorder's batches: written and acked at once, waited on while the database is down, and a
message the database refuses, alone, parked with its reason instead of blocking the rest.

The channel, the connection and the log store are fakes; the real ones are exercised in
tests/integration/test_recorder.py.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from workers.broker.topology import Topology
from workers.deliverylog.records import EventRecord, Record, encode
from workers.ops import recorder as recording
from workers.ops.recorder import Options, Recorder

TOPOLOGY = Topology(exchange="shop", prefix="shop")


@dataclass
class Channel:
    acked: list[tuple[int, bool]] = field(default_factory=list)
    published: list[tuple[str, bytes, dict[str, Any]]] = field(default_factory=list)

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.acked.append((tag, multiple))

    def basic_publish(self, exchange: str, queue: str, body: bytes, properties: Any, mandatory: bool) -> None:
        assert (exchange, mandatory) == ("", True)
        self.published.append((queue, body, dict(properties.headers)))


class Connection:
    def process_data_events(self, _seconds: float) -> None:
        return

    def sleep(self, _seconds: float) -> None:
        return


@dataclass
class Store:
    """Writes what it is given; refuses a batch holding ``poison``; fails everything while ``down``."""

    written: list[list[Record]] = field(default_factory=list)
    down: int = 0  # calls that fail before it answers again
    poison: str | None = None

    def write(self, records: Sequence[Record]) -> object:
        if self.down:
            self.down -= 1
            raise OSError("connection refused")
        if any(getattr(record, "id", None) == self.poison for record in records):
            raise ValueError("value too long for type character varying(26)")
        if records:
            self.written.append(list(records))
        return None

    def enforce_retention(self) -> object:
        return None


def message(event_id: str) -> bytes:
    return encode([EventRecord(event_id, "order.created", "2026-11-28T10:00:00+00:00", "{}", 1.0, 0)])


@pytest.fixture(autouse=True)
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "FIRST_PAUSE", 0.0)


def settle(store: Store, *bodies: bytes) -> Channel:
    recorder = Recorder("amqp://guest:guest@127.0.0.1:1/%2F", TOPOLOGY, store, Options())
    channel = Channel()
    for tag, body in enumerate(bodies, start=1):
        recorder.take(channel, tag, body)  # type: ignore[arg-type] # the fake has what is used
    recorder.settle(Connection(), channel, threading.Event())  # type: ignore[arg-type] # as above
    recorder.close()
    return channel


def test_a_batch_is_written_in_one_transaction_and_acked_with_one_multiple_ack() -> None:
    store = Store()
    channel = settle(store, message("evt_1"), message("evt_2"), message("evt_3"))
    assert [[record.id for record in batch] for batch in store.written] == [["evt_1", "evt_2", "evt_3"]]
    assert channel.acked == [(3, True)]


def test_while_the_database_is_down_the_batch_is_tried_again_and_acked_only_once_written() -> None:
    store = Store(down=5)
    channel = settle(store, message("evt_1"), message("evt_2"))
    assert [[record.id for record in batch] for batch in store.written] == [["evt_1", "evt_2"]]
    assert channel.acked == [(2, True)]
    assert channel.published == []


def test_a_message_the_database_refuses_alone_is_parked_with_its_reason_and_the_others_are_written() -> None:
    store = Store(poison="evt_bad")
    channel = settle(store, message("evt_1"), message("evt_bad"), message("evt_3"))
    assert [[record.id for record in batch] for batch in store.written] == [["evt_1"], ["evt_3"]]
    [(queue, body, headers)] = channel.published
    assert (queue, body) == ("shop.log.invalid", message("evt_bad"))
    assert "value too long" in headers["x-hookline-reason"]
    assert sorted(channel.acked) == [(1, False), (2, False), (3, False)]


def test_a_message_that_is_not_a_log_message_is_parked_at_once_and_never_written() -> None:
    store = Store()
    channel = settle(store, b'{"v": 1, "records": [1]}', message("evt_2"))
    [(queue, _, headers)] = channel.published
    assert queue == "shop.log.invalid"
    assert headers["x-hookline-reason"].startswith("not a log message")
    assert [[record.id for record in batch] for batch in store.written] == [["evt_2"]]
    assert channel.acked == [(1, False), (2, True)]
