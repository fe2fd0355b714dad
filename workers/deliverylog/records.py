"""What the delivery log is told: an event received, an attempt made, a delivery's state changed.

Records are plain data, written by workers and read by the recorder, so they
travel as JSON (``{"v": 1, "records": [...]}``, one message for everything one
actor message produced). Each record has an id derived from what it describes,
never drawn at random, so a record sent twice (a worker killed before its ack,
a recorder killed before its commit) is written once.

A delivery is one event for one subscription, during one *run*: the first run
is the fan-out's (run ``""``); each replay starts a run of its own, so its
attempts, numbered from 1 again, are kept beside the earlier ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import orjson

VERSION = 1
# An endpoint's answer is kept to this many bytes: enough to read an error message.
RESPONSE_BODY_BYTES = 1024


class DeliveryState(StrEnum):
    """Where a delivery stands, as ``hookline deliveries list --state`` filters it."""

    PENDING = "pending"  # not attempted yet (its endpoint was busy), or a replay not yet attempted
    DELIVERED = "delivered"
    RETRYING = "retrying"  # an attempt failed; the next one is due at next_attempt_at
    DEAD_LETTERED = "dead_lettered"  # given up on: in the dead-letters queue
    SKIPPED = "skipped"  # its subscription was paused or removed when the event came


def delivery_id(event_id: str, subscription_id: str, run: str = "") -> str:
    """The id a delivery is shown by: the same for the same event, subscription and run."""
    digest = hashlib.sha256(f"{event_id}\x00{subscription_id}\x00{run}".encode()).hexdigest()
    return f"dlv_{digest[:26]}"


@dataclass(frozen=True, slots=True)
class EventRecord:
    """An event as fan-out read it; ``matched`` counts the subscriptions it matched, even none."""

    id: str
    type: str
    timestamp: str  # the event's own, ISO 8601 as published
    payload: str  # the webhook body every delivery sent: {"type", "timestamp", "data"}
    received_at: float  # Unix seconds
    matched: int
    kind: Literal["event"] = "event"


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt at a delivery: a request made, or refused before it (open breaker, blocked address).

    ``state`` is the delivery's state once this attempt was settled:
    delivered, retrying (then ``next_attempt_at`` is set) or dead_lettered.
    """

    event_id: str
    subscription_id: str
    run: str
    attempt: int  # 1 for the first attempt of a run
    started_at: float  # Unix seconds
    duration: float  # seconds
    status: int | None  # the HTTP status, if the endpoint answered
    reason: str | None  # why it failed (a workers.vocabulary.Reason); None when delivered
    error: str | None  # the failure's message, at most 500 characters, no secrets
    response_body: str | None  # the first RESPONSE_BODY_BYTES of the answer, decoded leniently
    state: DeliveryState
    next_attempt_at: float | None
    event_type: str
    kind: Literal["attempt"] = "attempt"

    @property
    def id(self) -> str:
        return f"{delivery_id(self.event_id, self.subscription_id, self.run)}.{self.attempt}"


@dataclass(frozen=True, slots=True)
class StateRecord:
    """A delivery's state changed without a request: skipped, deferred, parked, or replayed (pending).

    ``attempts`` is how many attempts the run had made by then; ``at`` orders a
    state record after the attempt records of the same run.
    """

    event_id: str
    subscription_id: str
    run: str
    state: DeliveryState
    at: float  # Unix seconds
    attempts: int
    reason: str | None  # e.g. subscription_paused, subscription_removed, endpoint_busy, disabled
    next_attempt_at: float | None
    event_type: str
    kind: Literal["state"] = "state"

    @property
    def id(self) -> str:
        return f"{delivery_id(self.event_id, self.subscription_id, self.run)}:{self.state}:{self.at!r}"


Record = EventRecord | AttemptRecord | StateRecord


def happened_at(record: Record) -> float:
    """When what a record describes happened (Unix seconds): what a recorder's lag is measured from."""
    if isinstance(record, EventRecord):
        return record.received_at
    if isinstance(record, AttemptRecord):
        return record.started_at
    return record.at


def response_excerpt(body: bytes | None) -> str | None:
    """What the log keeps of a response body: its first bytes, as text whatever they are."""
    if not body:
        return None
    return body[:RESPONSE_BODY_BYTES].decode("utf-8", errors="replace")


def encode(records: Sequence[Record]) -> bytes:
    """One log message holding ``records``, in order: compact UTF-8 JSON.

    orjson writes the records (dataclasses, their states enums) as they are, at
    a tenth of the cost of ``json.dumps`` over ``asdict``: workers encode every
    record they make, and a recorder decodes it again. Records hold only
    strings, small integers and floats, which it writes as the standard
    library would read them back.
    """
    return orjson.dumps({"v": VERSION, "records": records})


def decode(body: bytes) -> list[Record]:
    """The records of a log message; ValueError for anything else (the recorder parks it)."""
    try:
        message = orjson.loads(body)
        if not isinstance(message, dict) or message.get("v") != VERSION:
            raise ValueError(f"not a version {VERSION} log message")
        return [_record(item) for item in message["records"]]
    except (AttributeError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        # AttributeError: a record that is not an object (``item.pop`` on a list or a number).
        raise ValueError(f"not a log message: {exc}") from exc


def _record(item: dict[str, Any]) -> Record:
    kind = item.pop("kind")
    if kind == "event":
        return EventRecord(**item)
    if kind == "attempt":
        return AttemptRecord(**{**item, "state": DeliveryState(item["state"])})
    if kind == "state":
        return StateRecord(**{**item, "state": DeliveryState(item["state"])})
    raise ValueError(f"unknown record kind {kind!r}")
