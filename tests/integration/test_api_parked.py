"""Dead letters, invalid events and crashed messages over HTTP: a real ``hookline api``, the real broker.

Messages are parked by publishing them where hookline parks them (or, for a
crashed one, by rejecting it as a worker does); whether a replay or a delete
really moved or removed one is read from the queues themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import dramatiq
import pika
import pytest
from support.api import Api, isolated_env, running_api
from support.deadletters import dead_letter

from workers.broker.nodes import Nodes
from workers.broker.topology import Topology
from workers.pipeline.deadletters import PARKED_AT_HEADER, REASON_HEADER, ROUTING_KEY_HEADER, DeadLetter

pytestmark = pytest.mark.integration


class Queues:
    """The server's queues, read and written directly."""

    def __init__(self, api: Api) -> None:
        self.amqp_url = api.env["HOOKLINE_AMQP_URL"]
        self.topology = Topology(
            exchange=api.env["HOOKLINE_EXCHANGE"], prefix=api.env["HOOKLINE_QUEUE_PREFIX"]
        )
        self.dead = self.topology.dead_letters_queue
        self.invalid = self.topology.invalid_events_queue

    def publish(self, exchange: str, routing_key: str, body: bytes, **properties: Any) -> None:
        with self._channel() as channel:
            channel.confirm_delivery()
            channel.basic_publish(
                exchange, routing_key, body, pika.BasicProperties(**properties), mandatory=True
            )

    def park(self, letter: DeadLetter) -> None:
        self.publish("", self.dead, letter.to_json(), **vars(letter.properties(None)))

    def reject(self, queue: str) -> None:
        """Take one message off ``queue`` and reject it, as a worker's nack does: RabbitMQ moves it to .XQ."""
        with self._channel() as channel:
            method, _properties, _body = channel.basic_get(queue)
            assert method is not None
            assert method.delivery_tag is not None
            channel.basic_reject(method.delivery_tag, requeue=False)

    def ids(self, queue: str) -> list[str]:
        """The message ids in ``queue``, in order, all left in place."""
        found: list[str] = []
        with self._channel() as channel:
            while True:
                method, properties, _body = channel.basic_get(queue)
                if method is None or properties is None:
                    return found
                found.append(str(properties.message_id))

    def take(self, queue: str) -> list[bytes]:
        bodies: list[bytes] = []
        with self._channel() as channel:
            while True:
                method, _properties, body = channel.basic_get(queue, auto_ack=True)
                if method is None or body is None:
                    return bodies
                bodies.append(body)

    def empty(self) -> None:
        topology = self.topology
        parked = [topology.crashed_queue(queue) for queue in topology.actor_queues]
        with self._channel() as channel:
            for queue in (
                self.dead,
                self.invalid,
                topology.invalid_log_queue,
                *topology.actor_queues,
                *parked,
            ):
                channel.queue_purge(queue)

    def _channel(self) -> Any:
        return _Channel(self.amqp_url)


class _Channel:
    """A channel on a connection of its own, closed on exit: whatever it did not ack returns to its queue."""

    def __init__(self, amqp_url: str) -> None:
        self.connection = Nodes(amqp_url).connect()

    def __enter__(self) -> Any:
        return self.connection.channel()

    def __exit__(self, *_: object) -> None:
        self.connection.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    with isolated_env(directory, request.param) as env, running_api(env, directory / "api.log") as server:
        yield server


@pytest.fixture
def queues(api: Api) -> Queues:
    found = Queues(api)
    found.empty()
    return found


@pytest.fixture
def subscription(api: Api) -> str:
    body = {"url": "https://example.com/hooks", "event_patterns": ["#"]}
    return str(api.call("POST", "/v1/subscriptions", json=body).json()["id"])


def park_invalid(queues: Queues, event_id: str, body: bytes, reason: str) -> None:
    headers = {
        REASON_HEADER: reason,
        ROUTING_KEY_HEADER: "order.created",
        PARKED_AT_HEADER: "2026-03-10T12:00:00+00:00",
    }
    queues.publish("", queues.invalid, body, message_id=event_id, headers=headers)


def test_dead_letters_are_listed_oldest_first_by_subscription_and_left_in_the_queue(
    api: Api, queues: Queues, subscription: str
) -> None:
    first, second, elsewhere = dead_letter(subscription), dead_letter(subscription), dead_letter("sub_other")
    for letter in (first, second, elsewhere):
        queues.park(letter)

    every = api.call("GET", "/v1/dead-letters", key=api.read_only_key).json()
    mine = api.call("GET", "/v1/dead-letters", params={"subscription_id": subscription, "limit": 1}).json()

    assert (every["queue"], every["total"]) == (queues.dead, 3)
    assert [each["id"] for each in every["dead_letters"]] == [first.id, second.id, elsewhere.id]
    assert every["dead_letters"][0] == {**first.to_record(), "malformed": False}
    assert [each["id"] for each in mine["dead_letters"]] == [first.id]
    assert queues.ids(queues.dead) == [first.id, second.id, elsewhere.id]


def test_a_dead_letter_is_shown_with_its_payload_and_an_unknown_one_is_a_404(
    api: Api, queues: Queues, subscription: str
) -> None:
    letter = dead_letter(subscription)
    queues.park(letter)

    shown = api.call("GET", f"/v1/dead-letters/{letter.id}", key=api.read_only_key)
    missing = api.call("GET", "/v1/dead-letters/dl_nowhere")

    assert shown.json()["payload"] == letter.payload
    assert missing.status_code == 404
    assert missing.json()["type"] == "urn:hookline:problem:dead-letter-not-found"


def test_a_message_of_the_queue_that_is_no_dead_letter_is_listed_as_it_is(api: Api, queues: Queues) -> None:
    queues.publish("", queues.dead, b"not json", message_id="m_garbage")

    (listed,) = api.call("GET", "/v1/dead-letters").json()["dead_letters"]

    assert (listed["id"], listed["malformed"], listed["body"]) == ("m_garbage", True, "not json")
    assert listed["problem"].startswith("not a dead letter")


def test_a_dead_letter_whose_fields_have_the_wrong_types_is_listed_as_malformed_not_failed(
    api: Api, queues: Queues, subscription: str
) -> None:
    forged = {**dead_letter(subscription).to_record(), "id": "dl_forged", "attempts": "five"}
    queues.publish("", queues.dead, json.dumps(forged).encode(), message_id="dl_forged")

    response = api.call("GET", "/v1/dead-letters")

    assert response.status_code == 200
    (listed,) = response.json()["dead_letters"]
    assert (listed["id"], listed["malformed"]) == ("dl_forged", True)
    assert listed["problem"] == "not a dead letter: attempts of the wrong type"


def test_a_replayed_dead_letter_moves_to_the_retries_queue_as_attempt_one(
    api: Api, queues: Queues, subscription: str
) -> None:
    letter, other = dead_letter(subscription), dead_letter(subscription)
    queues.park(letter)
    queues.park(other)

    response = api.call("POST", f"/v1/dead-letters/{letter.id}/replay")

    assert response.status_code == 202
    assert response.json() == {"replayed": [letter.id], "refused": [], "not_found": []}
    assert queues.ids(queues.dead) == [other.id]
    (message,) = [dramatiq.Message.decode(body) for body in queues.take(queues.topology.retries_queue)]
    (sent,) = message.kwargs["deliveries"]
    assert (sent["event_id"], sent["subscription_id"], sent["attempt"]) == (letter.event_id, subscription, 1)


def test_a_dead_letter_of_a_paused_subscription_is_refused_and_stays(
    api: Api, queues: Queues, subscription: str
) -> None:
    letter = dead_letter(subscription)
    queues.park(letter)
    api.call("POST", f"/v1/subscriptions/{subscription}/pause")

    response = api.call("POST", f"/v1/dead-letters/{letter.id}/replay")

    assert response.status_code == 409
    assert response.json()["type"] == "urn:hookline:problem:replay-refused"
    assert response.json()["detail"] == f"subscription {subscription} is disabled"
    assert queues.ids(queues.dead) == [letter.id]


def test_a_deleted_dead_letter_is_gone_and_deleting_it_again_is_a_404(
    api: Api, queues: Queues, subscription: str
) -> None:
    letter, other = dead_letter(subscription), dead_letter(subscription)
    queues.park(letter)
    queues.park(other)

    deleted = api.call("DELETE", f"/v1/dead-letters/{letter.id}")
    again = api.call("DELETE", f"/v1/dead-letters/{letter.id}")

    assert (deleted.status_code, deleted.content) == (204, b"")
    assert again.status_code == 404
    assert queues.ids(queues.dead) == [other.id]


def test_a_read_only_key_may_neither_replay_nor_delete_and_the_dead_letter_stays(
    api: Api, queues: Queues, subscription: str
) -> None:
    letter = dead_letter(subscription)
    queues.park(letter)

    replay = api.call("POST", f"/v1/dead-letters/{letter.id}/replay", key=api.read_only_key)
    delete = api.call("DELETE", f"/v1/dead-letters/{letter.id}", key=api.read_only_key)

    assert (replay.status_code, delete.status_code) == (403, 403)
    assert replay.json()["type"] == "urn:hookline:problem:read-only-key"
    assert queues.ids(queues.dead) == [letter.id]


def test_invalid_events_are_listed_shown_and_deleted_by_id(api: Api, queues: Queues) -> None:
    park_invalid(queues, "evt_bad", b'{"id": "evt_bad"}', "'type' is missing")
    park_invalid(queues, "evt/slashed", b"not json", "not JSON")

    listing = api.call("GET", "/v1/invalid-events", key=api.read_only_key).json()
    shown = api.call("GET", "/v1/invalid-events/evt%2Fslashed", key=api.read_only_key).json()
    deleted = api.call("DELETE", "/v1/invalid-events/evt_bad")

    assert listing["queues"] == {queues.invalid: 2, queues.topology.invalid_log_queue: 0}
    assert [(each["id"], each["reason"]) for each in listing["messages"]] == [
        ("evt_bad", "'type' is missing"),
        ("evt/slashed", "not JSON"),
    ]
    assert (shown["body"], shown["routing_key"]) == ("not json", "order.created")
    assert deleted.status_code == 204
    assert queues.ids(queues.invalid) == ["evt/slashed"]


def test_a_replayed_invalid_event_goes_back_through_the_exchange(api: Api, queues: Queues) -> None:
    body = json.dumps(
        {"id": "evt_fixed", "type": "order.created", "timestamp": "2024-05-01T12:00:00Z", "data": {}}
    )
    park_invalid(queues, "evt_fixed", body.encode(), "too large")

    response = api.call("POST", "/v1/invalid-events/evt_fixed/replay")

    assert response.status_code == 202
    assert response.json()["replayed"] == ["evt_fixed"]
    assert queues.ids(queues.invalid) == []
    assert queues.take(queues.topology.events_queue) == [body.encode()]


def test_an_unknown_invalid_event_is_a_404_of_its_own_type_for_every_method(api: Api, queues: Queues) -> None:
    answers = [
        api.call("GET", "/v1/invalid-events/evt_nowhere"),
        api.call("POST", "/v1/invalid-events/evt_nowhere/replay"),
        api.call("DELETE", "/v1/invalid-events/evt_nowhere"),
    ]

    assert {answer.status_code for answer in answers} == {404}
    assert {answer.json()["type"] for answer in answers} == {"urn:hookline:problem:parked-message-not-found"}


def test_a_crashed_message_is_listed_and_replayed_to_the_queue_it_came_from(api: Api, queues: Queues) -> None:
    retries = queues.topology.retries_queue
    queues.publish("", retries, b'{"message_id": "m_retry"}', message_id="m_retry")
    queues.reject(retries)

    (listed,) = api.call("GET", "/v1/crashed-messages").json()["messages"]
    response = api.call("POST", "/v1/crashed-messages/m_retry/replay")

    assert (listed["id"], listed["origin"]) == ("m_retry", retries)
    assert listed["reason"].startswith("rejected by its worker")
    assert response.status_code == 202
    assert queues.ids(retries) == ["m_retry"]
    assert queues.ids(queues.topology.crashed_queue(retries)) == []
