"""``producer/event.schema.json`` and :class:`~producer.event.Event` describe the same contract."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from importlib import resources
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from producer.errors import InvalidEvent
from producer.event import Event

VALID: dict[str, Any] = {
    "id": "evt_1",
    "type": "order.created",
    "timestamp": "2024-05-01T12:00:00Z",
    "data": {"order_id": 42},
}
DROP = object()


def schema() -> dict[str, Any]:
    text = (resources.files("producer") / "event.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def ecma_pattern(
    validator: Draft202012Validator, pattern: str, instance: object, _schema: object
) -> Iterator[ValidationError]:
    # JSON Schema patterns are ECMA-262 regexes, where `$` matches only at the very end;
    # Python's `re`, which jsonschema uses, also lets it match before a final newline.
    if isinstance(instance, str) and not re.search(re.sub(r"\$$", r"\\Z", pattern), instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


format_checker = FormatChecker()


@format_checker.checks("date-time", raises=ValueError)
def calendar_date(instance: object) -> bool:
    # jsonschema checks date-time only with an optional package; the pattern checks the shape,
    # so this adds what a regex cannot: that the date exists.
    return not isinstance(instance, str) or bool(date.fromisoformat(instance[:10]))


ContractValidator = jsonschema.validators.extend(Draft202012Validator, {"pattern": ecma_pattern})


def schema_accepts(obj: object) -> bool:
    return bool(ContractValidator(schema(), format_checker=format_checker).is_valid(obj))


def event_accepts(obj: object) -> bool:
    try:
        Event.from_mapping(obj)
    except InvalidEvent:
        return False
    return True


def changed(**changes: object) -> dict[str, Any]:
    return {key: value for key, value in {**VALID, **changes}.items() if value is not DROP}


ACCEPTED: list[object] = [
    VALID,
    changed(id="x"),
    changed(id="".join(chr(code) for code in range(0x21, 0x7F)) * 2 + "!" * 67),  # 255 characters
    changed(type="a"),
    changed(type="billing.invoice_v2.paid"),
    changed(type=".".join(["segment_1"] * 25) + ".abcde"),  # 255 characters
    changed(timestamp="2024-05-01T12:00:00.123456+02:00"),
    changed(timestamp="2024-05-01t12:00:00z"),
    changed(timestamp="2024-02-29T23:59:60-05:30"),
    changed(data={}),
    changed(data={"nested": {"list": [1, "two", None, True, 3.5]}}),
]

REFUSED: list[object] = [
    [],
    "an event",
    None,
    changed(id=DROP),
    changed(data=DROP),
    changed(extra="field"),
    changed(id=""),
    changed(id="with space"),
    changed(id="tab\there"),
    changed(id="trailing-newline\n"),
    changed(id="non-ascii-é"),
    changed(id="x" * 256),
    changed(id=42),
    changed(type=""),
    changed(type="order created"),
    changed(type="order..created"),
    changed(type=".order"),
    changed(type="order."),
    changed(type="order-created"),
    changed(type="order.*"),
    changed(type="order.created\n"),
    changed(type=".".join(["segment_1"] * 25) + ".abcdef"),  # 256 characters
    changed(type=None),
    changed(timestamp="2024-05-01T12:00:00"),
    changed(timestamp="2024-05-01"),
    changed(timestamp="2024-05-01 12:00:00Z"),
    changed(timestamp="2024-05-01T12:00:00+0200"),
    changed(timestamp="2024-05-01T24:00:00Z"),
    changed(timestamp="2024-13-01T12:00:00Z"),
    changed(timestamp="2023-02-29T12:00:00Z"),
    changed(timestamp="2024-04-31T12:00:00Z"),
    changed(timestamp="2024-05-01T12:00:00Z\n"),
    changed(timestamp="٢٠٢٤-05-01T12:00:00Z"),
    changed(timestamp=1714564800),
    changed(data=[]),
    changed(data=None),
    changed(data="{}"),
]


@pytest.mark.parametrize("obj", ACCEPTED, ids=lambda obj: json.dumps(obj)[:60])
def test_schema_and_event_both_accept(obj: object) -> None:
    assert (schema_accepts(obj), event_accepts(obj)) == (True, True)


@pytest.mark.parametrize("obj", REFUSED, ids=lambda obj: json.dumps(obj)[:60])
def test_schema_and_event_both_refuse(obj: object) -> None:
    assert (schema_accepts(obj), event_accepts(obj)) == (False, False)


def test_the_schema_is_a_valid_draft_2020_12_schema_with_id_title_and_description() -> None:
    document = schema()
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"].endswith("event.schema.json")
    assert document["title"]
    assert document["description"]
    assert document["additionalProperties"] is False


def test_every_example_in_the_schema_is_a_valid_event() -> None:
    examples = schema()["examples"]
    assert examples
    for example in examples:
        assert schema_accepts(example)
        assert Event.from_mapping(example).to_json() == json.dumps(example, separators=(",", ":")).encode()


def test_the_schema_is_installed_as_package_data_of_producer() -> None:
    resource = resources.files("producer") / "event.schema.json"
    assert resource.is_file()
    assert json.loads(resource.read_bytes())["title"] == "hookline event"
