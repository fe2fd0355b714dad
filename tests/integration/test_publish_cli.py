"""``hookline publish`` as a user runs it: a subprocess against the real RabbitMQ on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel

from producer.event import Event

pytestmark = pytest.mark.integration

HOOKLINE = str(Path(sys.executable).with_name("hookline"))


@pytest.fixture
def channel(amqp_connection: pika.BlockingConnection) -> BlockingChannel:
    return amqp_connection.channel()


@pytest.fixture
def env(amqp_url: str, unique_name: str, channel: BlockingChannel) -> Iterator[dict[str, str]]:
    """Settings for ``hookline``, naming a unique exchange whose every event lands in ``queue(env)``."""
    exchange = f"hookline.test.{unique_name}"
    channel.exchange_declare(exchange, "topic")
    channel.queue_declare(queue(exchange))
    channel.queue_bind(queue(exchange), exchange, "#")
    yield {"HOOKLINE_AMQP_URL": amqp_url, "HOOKLINE_EXCHANGE": exchange}
    channel.queue_delete(queue(exchange))
    channel.exchange_delete(exchange)


def queue(exchange: str) -> str:
    return f"{exchange}.events"


def hookline(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HOOKLINE, *args],
        input=stdin,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stored(channel: BlockingChannel, env: dict[str, str]) -> list[tuple[str, Event]]:
    """(routing key, event) of every message in the test queue, taken out of it."""
    messages: list[tuple[str, Event]] = []
    while True:
        method, _properties, body = channel.basic_get(queue(env["HOOKLINE_EXCHANGE"]), auto_ack=True)
        if method is None or body is None:
            return messages
        messages.append((str(method.routing_key), Event.from_json(body, max_bytes=1 << 20)))


def test_publish_prints_the_id_of_the_event_it_published(
    env: dict[str, str], channel: BlockingChannel
) -> None:
    result = hookline(env, "publish", "order.created", "--data", '{"order_id": 42}')
    assert result.returncode == 0, result.stderr
    [(routing_key, event)] = stored(channel, env)
    assert result.stdout == f"{event.id}\n"
    assert (routing_key, event.type, event.data) == ("order.created", "order.created", {"order_id": 42})


def test_publish_with_json_prints_the_event_with_the_given_id_and_timestamp(
    env: dict[str, str], channel: BlockingChannel
) -> None:
    result = hookline(
        env,
        "publish",
        "order.paid",
        "--data",
        "{}",
        "--id",
        "order-42-paid",
        "--timestamp",
        "2024-05-01T12:00:00Z",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    expected = {"id": "order-42-paid", "type": "order.paid", "timestamp": "2024-05-01T12:00:00Z", "data": {}}
    assert json.loads(result.stdout) == expected
    assert stored(channel, env) == [("order.paid", Event.from_mapping(expected))]


@pytest.mark.parametrize(
    ("data", "problem"),
    [("{not json", "not JSON: Expecting property name"), ("[1, 2]", "must be a JSON object")],
)
def test_publish_refuses_bad_data_as_a_usage_error_and_publishes_nothing(
    env: dict[str, str], channel: BlockingChannel, data: str, problem: str
) -> None:
    result = hookline(env, "publish", "order.created", "--data", data)
    assert result.returncode == 2
    assert "--data" in result.stderr
    assert problem in result.stderr
    assert stored(channel, env) == []


def test_publish_reads_data_lines_from_stdin_and_reports_a_bad_line_by_its_number(
    env: dict[str, str], channel: BlockingChannel
) -> None:
    lines = [json.dumps({"n": n}) for n in range(1, 101)]
    lines[41] = "{oops"  # line 42
    result = hookline(env, "publish", "order.created", stdin="\n".join(lines) + "\n")
    assert result.returncode == 1
    assert result.stdout == "published 99 events, 1 failed\n"
    assert result.stderr == (
        "line 42: not JSON: Expecting property name enclosed in double quotes at line 1 column 2\n"
    )
    messages = stored(channel, env)
    assert sorted(event.data["n"] for _, event in messages) == [n for n in range(1, 101) if n != 42]
    assert {routing_key for routing_key, _ in messages} == {"order.created"}


def test_publish_without_type_reads_whole_events_and_generates_missing_ids_and_timestamps(
    env: dict[str, str], channel: BlockingChannel
) -> None:
    lines = [
        {"type": "order.created", "data": {"n": 1}},
        {"type": "order.paid", "data": {"n": 2}, "id": "fixed-id", "timestamp": "2024-05-01T12:00:00+02:00"},
        {"type": "order.created"},
        {"type": "order.created", "data": {}, "extra": True},
    ]
    result = hookline(env, "publish", "--json", stdin="\n".join(json.dumps(line) for line in lines))
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == {
        "published": 2,
        "failed": [
            {"line": 3, "error": "missing field 'data'"},
            {"line": 4, "error": "unknown field 'extra' (allowed: id, type, timestamp, data)"},
        ],
    }
    first, second = (event for _, event in stored(channel, env))
    assert (first.type, first.data, first.id.startswith("evt_")) == ("order.created", {"n": 1}, True)
    assert (second.id, second.timestamp) == ("fixed-id", "2024-05-01T12:00:00+02:00")


def test_publish_of_many_valid_lines_exits_zero_and_draws_no_progress_bar_into_a_pipe(
    env: dict[str, str], channel: BlockingChannel
) -> None:
    stdin = "".join(json.dumps({"n": n}) + "\n" for n in range(3000))
    result = hookline(env, "publish", "order.created", stdin=stdin)
    assert (result.returncode, result.stdout, result.stderr) == (0, "published 3000 events\n", "")
    assert len(stored(channel, env)) == 3000


def test_publish_reports_broker_failures_per_line(env: dict[str, str], channel: BlockingChannel) -> None:
    channel.queue_unbind(queue(env["HOOKLINE_EXCHANGE"]), env["HOOKLINE_EXCHANGE"], "#")
    channel.queue_bind(queue(env["HOOKLINE_EXCHANGE"]), env["HOOKLINE_EXCHANGE"], "order.#")
    lines = ['{"type": "order.created", "data": {}}', '{"type": "user.created", "data": {}}']
    result = hookline(env, "publish", stdin="\n".join(lines))
    assert result.returncode == 1
    assert result.stdout == "published 1 event, 1 failed\n"
    assert result.stderr.startswith("line 2: event evt_")
    assert "returned by the broker" in result.stderr


def test_publish_to_a_missing_exchange_says_to_run_setup(env: dict[str, str], unique_name: str) -> None:
    missing = {**env, "HOOKLINE_EXCHANGE": f"hookline.test.{unique_name}.missing"}
    result = hookline(missing, "publish", "order.created", "--data", "{}")
    assert result.returncode == 1
    assert result.stderr.startswith("hookline: exchange ")
    assert "run `hookline setup`" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_publish_with_a_bad_setting_prints_one_line_and_exits_2(env: dict[str, str]) -> None:
    result = hookline({**env, "HOOKLINE_AMQP_URL": "http://127.0.0.1/"}, "publish", "a", "--data", "{}")
    assert result.returncode == 2
    assert result.stderr == (
        "hookline: invalid setting HOOKLINE_AMQP_URL: must be an amqp:// or amqps:// URL with a host\n"
    )
