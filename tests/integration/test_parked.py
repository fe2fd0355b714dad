"""``hookline invalid`` and ``hookline crashed``: raw parked messages are listed, shown, replayed, purged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pika
import pytest
from click.testing import CliRunner, Result
from support.processes import messages, run_hookline, wait_until

from producer.settings import load
from workers.broker.rabbitmq import HooklineBroker
from workers.broker.topology import FAN_OUT_ACTOR, RawEvent, Topology
from workers.cli import cli
from workers.middleware.fail_on_error import FailOnError
from workers.pipeline.deadletters import park_invalid_event
from workers.settings import Settings

pytestmark = pytest.mark.integration

CARD = "4111 1111 1111 1111"
EVENT = {
    "id": "evt_crash_1",
    "type": "order.created",
    "timestamp": "2024-05-01T12:00:00Z",
    "data": {"card": CARD},
}


class Hookline:
    def __init__(self, env: dict[str, str]) -> None:
        self.amqp_url = env["HOOKLINE_AMQP_URL"]
        self.topology = Topology(exchange=env["HOOKLINE_EXCHANGE"], prefix=env["HOOKLINE_QUEUE_PREFIX"])
        self.events_xq = self.topology.crashed_queue(self.topology.events_queue)
        self.retries_xq = self.topology.crashed_queue(self.topology.retries_queue)

    def run(self, *args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=stdin)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def publish(self, exchange: str, routing_key: str, body: bytes, **properties: Any) -> None:
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                exchange, routing_key, body, pika.BasicProperties(**properties), mandatory=True
            )
        finally:
            connection.close()

    def reject(self, queue: str) -> None:
        """Take one message off ``queue`` and reject it, as a worker's nack does: RabbitMQ moves it to .XQ."""
        connection = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        try:
            channel = connection.channel()
            method, _properties, _body = channel.basic_get(queue)
            assert method is not None
            assert method.delivery_tag is not None
            channel.basic_reject(method.delivery_tag, requeue=False)
        finally:
            connection.close()


@pytest.fixture
def hookline(hookline_env: dict[str, str]) -> Hookline:
    run_hookline(hookline_env, "setup")
    return Hookline(hookline_env)


@pytest.fixture
def broker(hookline: Hookline) -> Iterator[HooklineBroker]:
    settings = load(Settings)
    broker = HooklineBroker(topology=hookline.topology, url=settings.amqp_url, middleware=[FailOnError()])
    yield broker
    broker.close()


def crash_on_an_event(broker: HooklineBroker, hookline: Hookline) -> None:
    """A fan_out actor that raises, run by a real dramatiq worker on the real events queue."""

    def fan_out(raw: RawEvent) -> None:
        raise KeyError(raw.body.decode())  # an exception whose text quotes the payload

    dramatiq.actor(
        fan_out, actor_name=FAN_OUT_ACTOR, queue_name=hookline.topology.events_queue, broker=broker
    )
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        hookline.publish(hookline.topology.exchange, "order.created", json.dumps(EVENT).encode())
        wait_until(
            lambda: messages(hookline.amqp_url, hookline.events_xq) == 1, timeout=20, what="crash parked"
        )
    finally:
        worker.stop()


def test_a_crashed_event_is_parked_with_its_reason_and_routing_key_and_replayed_to_the_exchange(
    hookline: Hookline, broker: HooklineBroker
) -> None:
    crash_on_an_event(broker, hookline)

    listed = hookline.json("crashed", "list")
    [entry] = listed["messages"]
    assert entry["id"] == "evt_crash_1"
    assert entry["queue"] == hookline.events_xq
    assert entry["origin"] == hookline.topology.events_queue
    assert entry["routing_key"] == "order.created"
    assert entry["reason"].startswith("crashed: KeyError at test_parked.py:")
    assert CARD not in entry["reason"]
    assert json.loads(entry["body"]) == EVENT
    assert listed["queues"] == {hookline.events_xq: 1, hookline.retries_xq: 0}

    replayed = hookline.json("crashed", "replay", "evt_crash_1")

    assert replayed == {"replayed": ["evt_crash_1"], "refused": [], "not_found": []}
    assert messages(hookline.amqp_url, hookline.events_xq) == 0
    assert messages(hookline.amqp_url, hookline.topology.events_queue) == 1  # back through the exchange


def test_a_message_rabbitmq_dead_lettered_itself_shows_the_x_death_story_and_goes_back_where_it_came_from(
    hookline: Hookline,
) -> None:
    hookline.publish(
        hookline.topology.exchange, "order.created", json.dumps(EVENT).encode(), message_id="evt_1"
    )
    hookline.publish("", hookline.topology.retries_queue, b'{"message_id": "m_retry"}')
    hookline.reject(hookline.topology.events_queue)
    hookline.reject(hookline.topology.retries_queue)

    entries = {entry["id"]: entry for entry in hookline.json("crashed", "list")["messages"]}

    assert entries["evt_1"]["routing_key"] == "order.created"
    assert entries["evt_1"]["reason"].startswith("rejected by its worker")
    assert entries["m_retry"]["origin"] == hookline.topology.retries_queue
    assert hookline.json("crashed", "replay", "--all")["replayed"] == ["evt_1", "m_retry"]
    assert messages(hookline.amqp_url, hookline.topology.events_queue) == 1
    assert messages(hookline.amqp_url, hookline.topology.retries_queue) == 1


def test_an_invalid_event_is_listed_shown_and_purged_by_id(
    hookline: Hookline, broker: HooklineBroker
) -> None:
    body = b'{"id": "evt_bad", "type": "order.created", "data": "caf\\ud83d"}'
    park_invalid_event(broker, RawEvent(body, "order.created", redelivered=False), "a lone surrogate at data")
    park_invalid_event(broker, RawEvent(b"not json", "order.created", redelivered=False), "not JSON")

    listing = hookline.json("invalid", "list")
    shown = hookline.json("invalid", "show", "evt_bad")
    purged = hookline.json("invalid", "purge", "evt_bad", "--yes")

    assert [entry["reason"] for entry in listing["messages"]] == ["a lone surrogate at data", "not JSON"]
    assert listing["queues"] == {
        hookline.topology.invalid_events_queue: 2,
        hookline.topology.invalid_log_queue: 0,
    }
    assert shown["body"] == body.decode()
    assert purged == {"purged": 1, "ids": ["evt_bad"], "not_found": []}
    assert messages(hookline.amqp_url, hookline.topology.invalid_events_queue) == 1


def test_a_log_message_the_recorder_parked_goes_back_to_the_log_queue(hookline: Hookline) -> None:
    hookline.publish(
        "", hookline.topology.invalid_log_queue, b"{}", headers={"x-hookline-reason": "not a log message"}
    )

    [entry] = hookline.json("invalid", "list")["messages"]
    replayed = hookline.json("invalid", "replay", entry["id"])

    assert entry["reason"] == "not a log message"
    assert replayed["replayed"] == [entry["id"]]
    assert messages(hookline.amqp_url, hookline.topology.log_queue) == 1


def test_purging_without_yes_and_without_a_terminal_refuses_and_removes_nothing(
    hookline: Hookline, broker: HooklineBroker
) -> None:
    park_invalid_event(broker, RawEvent(b"not json", "order.created", redelivered=False), "not JSON")

    result = hookline.run("invalid", "purge", "--all", stdin="y\n")

    assert result.exit_code == 1
    assert "no terminal to confirm on; pass --yes" in result.stderr
    assert messages(hookline.amqp_url, hookline.topology.invalid_events_queue) == 1


def test_an_unknown_id_is_a_one_line_error(hookline_env: dict[str, str], hookline: Hookline) -> None:
    result = run_hookline(hookline_env, "invalid", "show", "evt_nope", check=False)

    assert result.returncode == 1
    assert result.stderr == "hookline: no invalid message with id 'evt_nope'\n"
