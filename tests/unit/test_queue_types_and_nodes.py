"""Quorum or classic queues, their arguments, and a broker URL that names several nodes."""

from __future__ import annotations

import pika
import pika.exceptions
import pytest
from support.settings import one_line_error

from producer.settings import ProducerSettings, load, node_urls, redacted_url
from workers.broker import nodes
from workers.broker.nodes import Nodes, publish_confirmed
from workers.broker.rabbitmq import MOVING, HooklineBroker, Mismatch
from workers.broker.topology import DELIVERY_LIMIT, Topology
from workers.settings import Settings

QUORUM = Topology(exchange="shop.events", prefix="shop", queue_type="quorum")
CLASSIC = Topology(exchange="shop.events", prefix="shop", queue_type="classic")
THREE_NODES = "amqp://app:s3cret@rabbit-1/%2F,amqp://app:s3cret@rabbit-2/%2F,amqp://app:s3cret@rabbit-3/%2F"

# -- the setting ---------------------------------------------------------------------------------


def test_queues_are_quorum_queues_unless_classic_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load(Settings).queue_type == "quorum"
    monkeypatch.setenv("HOOKLINE_QUEUE_TYPE", "classic")
    assert Topology.from_settings(load(Settings)).queue_type == "classic"


def test_an_unknown_queue_type_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_QUEUE_TYPE", "stream")
    assert "HOOKLINE_QUEUE_TYPE" in message
    assert "quorum" in message


# -- the arguments each queue is declared with ---------------------------------------------------


def test_a_quorum_actor_queue_parks_what_is_rejected_or_redelivered_too_often_in_its_xq() -> None:
    assert QUORUM.arguments("shop.events") == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "shop.events.XQ",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
        "x-delivery-limit": DELIVERY_LIMIT,
    }
    assert QUORUM.arguments("shop.retries.DQ") == QUORUM.arguments("shop.retries")
    assert QUORUM.arguments("shop.retries")["x-dead-letter-routing-key"] == "shop.retries.XQ"


def test_a_quorum_delay_queue_moves_its_messages_on_to_the_retries_queue_at_least_once() -> None:
    assert QUORUM.arguments("shop.delay.64s") == {
        "x-message-ttl": 64_000,
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "shop.retries",
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def test_queues_that_only_park_have_no_delivery_limit_which_would_drop_what_was_looked_at_too_often() -> None:
    for queue in ("shop.deliveries.dead", "shop.events.invalid", "shop.events.XQ", "shop.retries.XQ"):
        assert QUORUM.arguments(queue) == {"x-queue-type": "quorum"}


def test_classic_queues_keep_the_arguments_hookline_always_gave_them() -> None:
    assert CLASSIC.arguments("shop.events") == {
        "x-queue-type": "classic",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "shop.events.XQ",
    }
    assert CLASSIC.arguments("shop.delay.1s") == {
        "x-message-ttl": 1000,
        "x-queue-type": "classic",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "shop.retries",
    }
    assert CLASSIC.arguments("shop.deliveries.dead") == {"x-queue-type": "classic"}


def test_every_queue_hookline_may_create_has_arguments_and_no_other_queue_does() -> None:
    for queue in QUORUM.all_queues():
        assert QUORUM.arguments(queue)["x-queue-type"] == "quorum"
    with pytest.raises(KeyError):
        QUORUM.arguments("shop.something.else")


def test_dramatiq_declares_the_actor_queues_and_their_companions_with_hooklines_arguments() -> None:
    broker = HooklineBroker(topology=QUORUM, url="amqp://guest:guest@127.0.0.1:1/%2F", middleware=[])
    assert broker._build_queue_arguments("shop.events") == QUORUM.arguments("shop.events")


# -- a refused declaration, in one line ----------------------------------------------------------

# What RabbitMQ 3.10 answers, word for word.
CLASSIC_FOUND = (
    "PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'shop.events' in vhost '/': "
    "received the value 'quorum' of type 'longstr' but current is none"
)
QUORUM_FOUND = (
    "PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-strategy' for queue 'shop.events' in vhost "
    "'/': received none but current is the value 'at-least-once' of type 'longstr'"
)
LIMIT_CHANGED = (
    "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'shop.events' in vhost '/': "
    "received '20' but current is '3'"
)


def refusal(text: str) -> Mismatch:
    mismatch = Mismatch.parse(pika.exceptions.ChannelClosedByBroker(406, text))
    assert mismatch is not None
    return mismatch


def test_a_classic_queue_where_quorum_is_configured_is_named_with_the_way_to_move() -> None:
    mismatch = refusal(CLASSIC_FOUND)
    assert (mismatch.queue, mismatch.argument) == ("shop.events", "x-queue-type")
    message = mismatch.describe("quorum", "classic", "amqp://app:***@rabbit/%2F")
    assert message == (
        "queue shop.events on amqp://app:***@rabbit/%2F is a classic queue but HOOKLINE_QUEUE_TYPE=quorum: "
        f"a queue's type cannot change in place; move to new queues ({MOVING}) or set "
        "HOOKLINE_QUEUE_TYPE=classic"
    )


def test_a_quorum_queue_where_classic_is_configured_is_named_though_rabbitmq_names_another_argument() -> None:
    message = refusal(QUORUM_FOUND).describe("classic", "quorum", "amqp://rabbit/")
    assert message.startswith(
        "queue shop.events on amqp://rabbit/ is a quorum queue but HOOKLINE_QUEUE_TYPE=classic"
    )
    assert "\n" not in message


def test_other_arguments_that_differ_are_named_with_rabbitmqs_words() -> None:
    message = refusal(LIMIT_CHANGED).describe("quorum", None, "amqp://rabbit/")
    assert "queue shop.events on amqp://rabbit/ has another x-delivery-limit" in message
    assert "received '20' but current is '3'" in message
    assert MOVING in message


def test_a_refusal_that_is_no_argument_mismatch_is_not_read_as_one() -> None:
    assert Mismatch.parse(pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED - no access")) is None
    assert Mismatch.parse(ConnectionRefusedError(111, "Connection refused")) is None


# -- several nodes -------------------------------------------------------------------------------


def test_the_broker_url_may_list_the_nodes_of_a_cluster_separated_by_commas() -> None:
    assert node_urls(" amqp://a/%2F , amqp://b/%2F,") == ["amqp://a/%2F", "amqp://b/%2F"]
    assert ProducerSettings(amqp_url=THREE_NODES).amqp_url == THREE_NODES


def test_a_bad_node_url_is_named_by_its_place_without_any_part_of_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = "amqp://app:hunter2@rabbit-1/%2F,http://app:hunter3@rabbit-2/"
    message = one_line_error(monkeypatch, "HOOKLINE_AMQP_URL", value, settings=ProducerSettings)
    assert "URL 2 of 2 must be an amqp:// or amqps:// URL" in message
    for secret in ("hunter2", "hunter3", "rabbit"):
        assert secret not in message


def test_a_password_with_a_raw_comma_is_refused_without_showing_either_half(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = one_line_error(
        monkeypatch, "HOOKLINE_AMQP_URL", "amqp://app:hun,ter2@rabbit/", settings=ProducerSettings
    )
    assert "hun" not in message
    assert "ter2" not in message


def test_every_nodes_password_is_redacted() -> None:
    assert redacted_url(THREE_NODES) == THREE_NODES.replace("s3cret", "***")
    assert redacted_url("amqp://app:pa,ss@rabbit/") == "amqp://app:***@rabbit/"
    # A database URL naming several hosts is one URL with one password.
    assert redacted_url("postgresql://u:pw@h1:5432,h2:5432/db") == "postgresql://u:***@h1:5432,h2:5432/db"


def test_each_new_connection_tries_every_node_starting_one_further_along() -> None:
    cluster = Nodes(THREE_NODES)
    hosts = [[parameters.host for parameters in cluster.parameters()] for _ in range(4)]
    assert hosts == [
        ["rabbit-1", "rabbit-2", "rabbit-3"],
        ["rabbit-2", "rabbit-3", "rabbit-1"],
        ["rabbit-3", "rabbit-1", "rabbit-2"],
        ["rabbit-1", "rabbit-2", "rabbit-3"],
    ]
    assert cluster.where == THREE_NODES.replace("s3cret", "***")


def test_dramatiq_connects_through_the_nodes_in_turn() -> None:
    broker = HooklineBroker(topology=QUORUM, url=THREE_NODES, middleware=[])
    assert [each[0].host for each in (broker.parameters, broker.parameters)] == ["rabbit-1", "rabbit-2"]


def test_timeouts_and_a_connection_name_apply_unless_the_url_sets_them() -> None:
    url = "amqp://rabbit-1/%2F?socket_timeout=9,amqp://rabbit-2/%2F"
    first, second = Nodes(url, name="hookline test", timeout=3.0, blocked_timeout=7.0).parameters()
    assert (first.socket_timeout, second.socket_timeout) == (9.0, 3.0)
    assert (first.stack_timeout, second.blocked_connection_timeout) == (3.0, 7.0)
    assert second.client_properties is not None
    assert str(second.client_properties["connection_name"]).startswith("hookline test (pid ")


# -- a publish through a node that goes away -----------------------------------------------------


class FlakyPublish:
    """A publish that fails with each of ``errors`` in turn, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.reconnects = 0

    def publish(self) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)

    def reconnect(self) -> None:
        self.reconnects += 1


@pytest.fixture
def no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "REPUBLISH_PAUSES", (0.0,) * len(nodes.REPUBLISH_PAUSES))


@pytest.mark.usefixtures("no_pauses")
def test_a_publish_lost_with_its_node_or_nacked_between_leaders_is_made_again_on_a_new_connection() -> None:
    flaky = FlakyPublish(
        pika.exceptions.StreamLostError("node gone"),
        pika.exceptions.ConnectionClosedByBroker(541, "INTERNAL_ERROR"),
        pika.exceptions.NackError([]),
    )
    publish_confirmed(flaky.publish, reconnect=flaky.reconnect)
    assert (flaky.calls, flaky.reconnects) == (4, 3)


@pytest.mark.usefixtures("no_pauses")
def test_a_publish_that_keeps_failing_raises_its_last_error_after_every_pause() -> None:
    flaky = FlakyPublish(*[pika.exceptions.StreamLostError("down")] * 10)
    with pytest.raises(pika.exceptions.StreamLostError):
        publish_confirmed(flaky.publish, reconnect=flaky.reconnect)
    assert flaky.calls == len(nodes.REPUBLISH_PAUSES) + 1


@pytest.mark.usefixtures("no_pauses")
@pytest.mark.parametrize(
    "error",
    [pika.exceptions.UnroutableError([]), pika.exceptions.ChannelClosedByBroker(403, "ACCESS_REFUSED")],
)
def test_what_waiting_cannot_mend_fails_at_once(error: Exception) -> None:
    flaky = FlakyPublish(error)
    with pytest.raises(type(error)):
        publish_confirmed(flaky.publish, reconnect=flaky.reconnect)
    assert flaky.calls == 1
