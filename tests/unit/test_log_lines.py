"""JSON log lines: one object per line, whatever a log call carries."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from tests.support.loglines import json_log_lines
from workers.observability import logs
from workers.vocabulary import Reason


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with json_log_lines() as lines:
        yield lines


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_carries_its_fields_level_and_time_in_one_json_object(stream: io.StringIO) -> None:
    logs.get_logger(component="deliver").info("delivered", status=204, reason=Reason.TIMEOUT, host="é.test")
    (line,) = lines(stream)
    assert {k: line[k] for k in ("event", "component", "status", "reason", "host", "level")} == {
        "event": "delivered",
        "component": "deliver",
        "status": 204,
        "reason": "timeout",
        "host": "é.test",
        "level": "info",
    }
    assert str(line["timestamp"]).endswith("Z")


def test_values_the_fast_renderer_cannot_write_are_still_logged(stream: io.StringIO) -> None:
    log = logs.get_logger()
    log.info("big", count=10**30)  # over 64 bits
    log.info("odd", keyed={1: "one"}, thing=object())
    big, odd = lines(stream)
    assert big["count"] == 10**30
    assert odd["keyed"] == {"1": "one"}
    assert str(odd["thing"]).startswith("<object object at")
