"""A message whose actor crashes is logged without its payload, and rejected, not acked."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker

from tests.support.loglines import json_log_lines
from workers.middleware.fail_on_error import FailOnError

CARD = "4111 1111 1111 1111"


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    with json_log_lines() as lines:
        yield lines


def crash_once(broker: StubBroker, **kwargs: Any) -> None:
    def charge(**_: Any) -> None:
        raise KeyError(CARD)  # an exception whose text quotes the payload

    actor = dramatiq.actor(charge, actor_name="charge", queue_name="payments", broker=broker)
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        actor.send(**kwargs)
        broker.join("payments", fail_fast=False)
        worker.join()
    finally:
        worker.stop()


def test_a_crashed_message_is_logged_once_without_its_payload_and_dead_lettered(stream: io.StringIO) -> None:
    broker = StubBroker(middleware=[FailOnError()])
    crash_once(broker, event={"data": {"card": CARD}})
    output = stream.getvalue()
    assert CARD not in output
    crashes = [json.loads(line) for line in output.splitlines() if "message_crashed" in line]
    assert len(crashes) == 1
    assert crashes[0]["actor"] == "charge"
    assert crashes[0]["error"] == "KeyError"
    assert crashes[0]["raised_at"].startswith("test_crash_logs.py:")
    assert len(broker.dead_letters) == 1  # rejected to the dead letters, not acked
