"""The event contract, rule by rule, and the reason given for each violation."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from producer.errors import EventTooLarge, InvalidEvent
from producer.event import Event

MAX = 256 * 1024
VALID: dict[str, Any] = {
    "id": "evt_1",
    "type": "order.created",
    "timestamp": "2024-05-01T12:00:00Z",
    "data": {"order_id": 42},
}


def event_json(**changes: Any) -> bytes:
    obj = {**VALID, **changes}
    return json.dumps({key: value for key, value in obj.items() if value is not ...}).encode()


def reason(raw: bytes | str) -> str:
    with pytest.raises(InvalidEvent) as caught:
        Event.from_json(raw, max_bytes=MAX)
    return str(caught.value)


def test_create_fills_in_a_fresh_id_and_the_current_time_in_utc_with_milliseconds() -> None:
    before = datetime.now(UTC).timestamp()
    event = Event.create("order.created", {"order_id": 42})
    assert re.fullmatch(r"evt_[0-9a-f]{32}", event.id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event.timestamp)
    assert before - 0.001 <= event.timestamp_unix() <= datetime.now(UTC).timestamp()
    assert Event.create("order.created", {}).id != event.id


def test_create_keeps_a_given_id_and_timestamp() -> None:
    event = Event.create("order.created", {}, id="order-42-created", timestamp="2024-05-01T14:00:00+02:00")
    assert (event.id, event.timestamp) == ("order-42-created", "2024-05-01T14:00:00+02:00")


def test_create_validates_like_every_other_constructor() -> None:
    with pytest.raises(InvalidEvent, match="'type' must be dot-separated segments"):
        Event.create("order created", {})
    with pytest.raises(InvalidEvent, match="'id' must be 1 to 255 visible ASCII"):
        Event(id="has space", type="a", timestamp="2024-05-01T12:00:00Z", data={})


def test_an_event_is_immutable() -> None:
    event = Event.create("order.created", {})
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.type = "order.paid"  # type: ignore[misc] # the assignment is what is under test


def test_to_json_is_compact_utf8_and_round_trips() -> None:
    event = Event.create("order.created", {"note": "café ☕", "items": [1, 2]}, id="evt_1")
    body = event.to_json()
    assert b" " not in body.replace(" ☕".encode(), b"")
    assert "café ☕".encode() in body
    assert json.loads(body) == {
        "id": "evt_1",
        "type": "order.created",
        "timestamp": event.timestamp,
        "data": {"note": "café ☕", "items": [1, 2]},
    }
    assert Event.from_json(body, max_bytes=MAX) == event


def test_to_json_rejects_data_that_json_cannot_represent() -> None:
    with pytest.raises(InvalidEvent, match="'data' cannot be encoded as JSON"):
        Event.create("a", {"when": datetime.now(UTC)}).to_json()
    with pytest.raises(InvalidEvent, match="'data' cannot be encoded as JSON"):
        Event.create("a", {"ratio": float("nan")}).to_json()


def test_to_json_raises_event_too_large_over_the_limit() -> None:
    event = Event.create("a", {"blob": "x" * 2000}, id="evt_big")
    assert len(event.to_json(max_bytes=4096)) > 2000
    with pytest.raises(EventTooLarge, match=r"event evt_big is \d+ bytes, over the limit of 1024"):
        event.to_json(max_bytes=1024)


def test_from_json_raises_event_too_large_before_parsing() -> None:
    raw = event_json(data={"blob": "x" * 2000})
    with pytest.raises(EventTooLarge, match=rf"event is {len(raw)} bytes, over the limit of 1024"):
        Event.from_json(raw, max_bytes=1024)
    assert issubclass(EventTooLarge, InvalidEvent)


def test_from_json_accepts_str_as_well_as_bytes() -> None:
    from_text = Event.from_json(event_json().decode(), max_bytes=MAX)
    assert from_text == Event.from_json(event_json(), max_bytes=MAX)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "not JSON: Expecting value at line 1 column 1"),
        (b'{"id": 1,\n', "not JSON: Expecting property name enclosed in double quotes at line 2 column 1"),
        (b"\xff{}", "not UTF-8: invalid start byte at byte 0"),
        (event_json(data={"x": "NaN"}).replace(b'"NaN"', b"NaN"), "not JSON: NaN is not a JSON value"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON: nested too deeply"),
        (b"[]", "an event must be a JSON object, got array"),
        (b'"order.created"', "an event must be a JSON object, got string"),
        (event_json(data=...), "missing field 'data'"),
        (b"{}", "missing fields 'id', 'type', 'timestamp', 'data'"),
        (event_json(extra=1), "unknown field 'extra' (allowed: id, type, timestamp, data)"),
        (event_json(a=1, b=2), "unknown fields 'a', 'b' (allowed: id, type, timestamp, data)"),
        (event_json(data=[1]), "'data' must be a JSON object, got array"),
        (event_json(data=None), "'data' must be a JSON object, got null"),
        (event_json(data="{}"), "'data' must be a JSON object, got string"),
    ],
)
def test_from_json_names_what_is_wrong_with_the_message(raw: bytes, expected: str) -> None:
    assert reason(raw) == expected


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        (42, "'id' must be a string, got number"),
        (None, "'id' must be a string, got null"),
        ("", "'id' must be 1 to 255 visible ASCII characters without spaces, got ''"),
        ("evt 1", "'id' must be 1 to 255 visible ASCII characters without spaces, got 'evt 1'"),
        ("evt_1\n", "'id' must be 1 to 255 visible ASCII characters without spaces, got 'evt_1\\n'"),
        ("évt_1", "'id' must be 1 to 255 visible ASCII characters without spaces, got 'évt_1'"),
    ],
)
def test_an_id_must_be_safe_to_send_as_an_http_header(event_id: object, expected: str) -> None:
    assert reason(event_json(id=event_id)) == expected


def test_an_id_may_be_up_to_255_visible_ascii_characters() -> None:
    longest = "".join(chr(code) for code in range(0x21, 0x7F)) * 3  # 282 characters: every visible one
    assert Event.from_json(event_json(id=longest[:255]), max_bytes=MAX).id == longest[:255]
    assert reason(event_json(id=longest[:256])).startswith("'id' must be 1 to 255 visible ASCII characters")


@pytest.mark.parametrize(
    "event_type",
    [
        "order created",
        "order.",
        ".order",
        "order..created",
        "order-created",
        "order.*",
        "a.#",
        "",
        "order.created\n",
        "ordér",
    ],
)
def test_a_type_must_be_dot_separated_segments_of_word_characters(event_type: str) -> None:
    assert reason(event_json(type=event_type)) == (
        f"'type' must be dot-separated segments of [A-Za-z0-9_], got {event_type!r}"
    )


def test_a_type_may_be_255_bytes_long_as_a_routing_key_but_no_longer() -> None:
    longest = ".".join(["segment_1"] * 25) + ".abcde"  # 255 characters
    assert len(longest) == 255
    assert Event.from_json(event_json(type=longest), max_bytes=MAX).type == longest
    assert reason(event_json(type=longest + "f")) == "'type' must be at most 255 bytes, got 256"


def test_a_type_must_be_a_string() -> None:
    assert reason(event_json(type=["order", "created"])) == "'type' must be a string, got array"


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-05-01T12:00:00Z",
        "2024-05-01T12:00:00.123Z",
        "2024-05-01T12:00:00.123456789+02:00",
        "2024-05-01t12:00:00z",
        "2024-05-01T12:00:00-05:30",
        "2024-02-29T00:00:00+00:00",
        "2016-12-31T23:59:60Z",
    ],
)
def test_a_timestamp_may_be_any_rfc3339_date_time_with_a_timezone(timestamp: str) -> None:
    assert Event.from_json(event_json(timestamp=timestamp), max_bytes=MAX).timestamp == timestamp


@pytest.mark.parametrize(
    "timestamp",
    [
        "2024-05-01T12:00:00",
        "2024-05-01",
        "2024-05-01 12:00:00Z",
        "2024-05-01T12:00Z",
        "2024-05-01T12:00:00+0200",
        "2024-05-01T12:00:00.Z",
        "1714564800",
        "٢٠٢٤-05-01T12:00:00Z",
        "2024-05-01T12:00:00Z\n",
    ],
)
def test_a_timestamp_without_a_timezone_or_in_another_format_is_refused(timestamp: str) -> None:
    assert reason(event_json(timestamp=timestamp)) == (
        "'timestamp' must be an RFC 3339 date-time with a timezone, like 2024-05-01T12:00:00Z, "
        f"got {timestamp!r}"
    )


@pytest.mark.parametrize(
    ("timestamp", "problem"),
    [
        ("2023-02-29T12:00:00Z", "day is out of range for month"),
        ("2024-13-01T12:00:00Z", "month must be in 1..12"),
        ("2024-05-01T24:00:00Z", "hour must be in 0..23"),
        ("2024-05-01T12:60:00Z", "minute must be in 0..59"),
        ("2024-05-01T12:00:00+24:00", "timezone offset out of range"),
    ],
)
def test_a_timestamp_must_be_a_real_date_and_time(timestamp: str, problem: str) -> None:
    assert reason(event_json(timestamp=timestamp)) == (
        f"'timestamp' is not a real date-time ({problem}), got {timestamp!r}"
    )


def test_a_timestamp_must_be_a_string() -> None:
    assert reason(event_json(timestamp=1714564800)) == "'timestamp' must be a string, got number"


@pytest.mark.parametrize(
    ("timestamp", "unix"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2024-05-01T12:00:00Z", 1714564800.0),
        ("2024-05-01T14:00:00.250+02:00", 1714564800.25),
        ("2024-05-01T06:30:00-05:30", 1714564800.0),
        ("2016-12-31T23:59:60.5Z", 1483228800.5),  # a leap second counts as the next second
    ],
)
def test_timestamp_unix_is_seconds_since_the_epoch(timestamp: str, unix: float) -> None:
    assert Event.create("a", {}, timestamp=timestamp).timestamp_unix() == pytest.approx(unix, abs=1e-6)


def test_a_long_bad_value_is_cut_so_that_the_reason_stays_one_short_line() -> None:
    message = reason(event_json(type="bad type\n" * 1000))
    assert "\n" not in message
    assert len(message) < 200
    assert message.endswith("… (9000 characters)")


@pytest.mark.parametrize(
    ("data_json", "where"),
    [
        ('{"name": "caf\\ud83d"}', "the event['data']['name']"),  # a string cut inside an emoji
        ('{"items": [{"note": "\\ude00 tail"}]}', "the event['data']['items'][0]['note']"),
        ('{"\\udc00key": 1}', "the event['data']['\\udc00key']"),
    ],
)
def test_a_lone_utf16_surrogate_is_refused_with_where_it_is(data_json: str, where: str) -> None:
    raw = event_json(data=...)[:-1] + f', "data": {data_json}}}'.encode()
    message = reason(raw)
    assert message == f"not valid Unicode: {where} holds a lone UTF-16 surrogate (a string cut in two?)"
    message.encode("utf-8")  # the reason itself goes into a header and a log line: it must encode


def test_a_surrogate_pair_escaped_in_json_is_one_character_and_welcome() -> None:
    raw = event_json(data=...)[:-1] + b', "data": {"name": "caf\\ud83d\\ude00"}}'
    assert Event.from_json(raw, max_bytes=MAX).data == {"name": "caf\U0001f600"}


def test_an_escaped_backslash_before_u_is_not_taken_for_a_surrogate() -> None:
    raw = event_json(data=...)[:-1] + b', "data": {"path": "C:\\\\ud83d"}}'
    assert Event.from_json(raw, max_bytes=MAX).data == {"path": "C:\\ud83d"}
