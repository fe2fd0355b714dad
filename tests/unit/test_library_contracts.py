"""The private parts of dramatiq and pika hookline relies on still exist and behave as it assumes.

Each of them is used in one module: dramatiq's RabbitMQ consumer and message in
workers/broker/rabbitmq.py, pika's frame output hook in producer/publisher.py.
A new release may move any of them without notice, so the versions are pinned
in pyproject.toml, and these tests fail first when a pin is widened too far:
they run the broker's consumers on a fake pika connection and the publisher's
hook on a fake transport, against the installed libraries.
"""

from __future__ import annotations

import inspect
import threading
import tomllib
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dramatiq
import pika
import pika.channel
import pika.exceptions
import pytest
from dramatiq import Message
from dramatiq.brokers import rabbitmq as dramatiq_rabbitmq
from dramatiq.brokers.stub import StubBroker
from dramatiq.cli import import_broker, make_argument_parser
from dramatiq.common import q_name, xq_name
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import Middleware
from packaging.requirements import Requirement
from packaging.version import Version
from pika.adapters.base_connection import BaseConnection
from pika.adapters.blocking_connection import BlockingChannel
from pika.adapters.select_connection import SelectConnection
from pika.spec import Basic

from producer.publisher import _CoalescingConnection
from workers.broker import heldacks, rabbitmq
from workers.broker.rabbitmq import HELD_ACK_HEADROOM, HooklineBroker
from workers.broker.topology import FAN_OUT_ACTOR, RawEvent, Topology
from workers.middleware.drain_batches import DrainBatches
from workers.middleware.drain_logs import DrainLogs
from workers.middleware.fail_on_error import FailOnError
from workers.middleware.heartbeat import Heartbeats

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
TOPOLOGY = Topology(exchange="contract.events", prefix="contract")
NO_RABBITMQ = "amqp://guest:guest@127.0.0.1:1/%2F"  # never dialled: pika's connection is faked


def pinned(name: str) -> Requirement:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    declared = [*project["dependencies"], *project["optional-dependencies"]["worker"]]
    [requirement] = [Requirement(text) for text in declared if Requirement(text).name == name]
    return requirement


@pytest.mark.parametrize("name", ["dramatiq", "pika"])
def test_the_installed_version_is_inside_the_range_pinned_in_pyproject(name: str) -> None:
    requirement = pinned(name)
    assert requirement.specifier, f"{name} has no version range: a private use needs one"
    assert Version(version(name)) in requirement.specifier, (name, version(name), str(requirement))


# -- dramatiq: the RabbitMQ broker's private consumer and message (workers/broker/rabbitmq.py) ----


@dataclass(eq=False)  # dramatiq keeps them in sets
class FakeChannel:
    """Stands in for a pika BlockingChannel: records what dramatiq and hookline do with it."""

    deliveries: list[tuple[Any, Any, bytes]] = field(default_factory=list)
    declared: list[dict[str, Any]] = field(default_factory=list)
    published: list[tuple[Any, ...]] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)
    acked_multiple: list[int] = field(default_factory=list)
    nacked: list[tuple[int, bool]] = field(default_factory=list)
    prefetch: int | None = None
    consuming: tuple[str, float] | None = None
    publish_error: Exception | None = None
    is_open: bool = True

    def confirm_delivery(self) -> None:
        pass

    def queue_declare(self, queue: str, **options: Any) -> None:
        self.declared.append({"queue": queue, **options})

    def exchange_declare(self, exchange: str, **options: Any) -> None:
        pass

    def queue_bind(self, queue: str, exchange: str, **options: Any) -> None:
        pass

    def basic_qos(self, prefetch_count: int) -> None:
        self.prefetch = prefetch_count

    def consume(self, queue: str, inactivity_timeout: float) -> Iterator[tuple[Any, Any, bytes]]:
        self.consuming = (queue, inactivity_timeout)
        return iter(self.deliveries)

    def basic_publish(self, *args: Any, **kwargs: Any) -> None:
        if self.publish_error is not None:
            raise self.publish_error
        self.published.append((*args, kwargs))

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        (self.acked_multiple if multiple else self.acked).append(tag)

    def basic_nack(self, tag: int, requeue: bool) -> None:
        self.nacked.append((tag, requeue))

    def close(self) -> None:
        self.is_open = False

    @property
    def _impl(self) -> FakeChannel:
        return self  # BlockingChannel's inner channel, which queues frames without flushing


@dataclass(eq=False)  # dramatiq keeps them in sets
class FakeConnection:
    """Stands in for pika.BlockingConnection; every connection of a test shares one channel."""

    parameters: Any
    channel_: FakeChannel
    is_open: bool = True

    def channel(self) -> FakeChannel:
        return self.channel_

    def add_callback_threadsafe(self, callback: Any) -> None:
        callback()  # dramatiq schedules acks on the consumer's connection: run them at once here

    def close(self) -> None:
        self.is_open = False


@pytest.fixture
def channel(monkeypatch: pytest.MonkeyPatch) -> FakeChannel:
    shared = FakeChannel()
    connections: list[FakeConnection] = []

    def connect(parameters: Any) -> FakeConnection:
        connections.append(FakeConnection(parameters, shared))
        return connections[-1]

    monkeypatch.setattr(pika, "BlockingConnection", connect)  # dramatiq reaches it as pika.BlockingConnection
    return shared


@pytest.fixture
def broker(channel: FakeChannel) -> Iterator[HooklineBroker]:
    broker = HooklineBroker(topology=TOPOLOGY, url=NO_RABBITMQ, middleware=[])
    yield broker
    heldacks.take()  # leave nothing held on the test's thread


def deliver(channel: FakeChannel, body: bytes, *, tag: int, routing_key: str = "order.created") -> None:
    method = Basic.Deliver(delivery_tag=tag, redelivered=False, routing_key=routing_key)
    channel.deliveries.append((method, pika.BasicProperties(), body))


def test_the_private_classes_have_the_signatures_hookline_calls_them_with() -> None:
    consumer_init = inspect.signature(dramatiq_rabbitmq._RabbitmqConsumer.__init__)
    assert list(consumer_init.parameters) == ["self", "broker", "queue_name", "prefetch", "timeout"]
    message_init = inspect.signature(dramatiq_rabbitmq._RabbitmqMessage.__init__)
    assert list(message_init.parameters) == ["self", "redelivered", "tag", "message"]
    for method in ("ack", "nack"):
        parameters = inspect.signature(getattr(dramatiq_rabbitmq._RabbitmqConsumer, method)).parameters
        assert list(parameters) == ["self", "message"]
    xq = inspect.signature(dramatiq_rabbitmq.RabbitmqBroker._declare_xq_queue)
    assert list(xq.parameters) == ["self", "queue_name"]
    consume = inspect.signature(dramatiq_rabbitmq.RabbitmqBroker.consume)
    assert list(consume.parameters) == ["self", "queue_name", "prefetch", "timeout"]
    assert isinstance(inspect.getattr_static(dramatiq_rabbitmq.RabbitmqBroker, "consumer_class"), property)
    # hookline's consumer adds _settle: dramatiq's must not have one it would replace.
    assert not hasattr(dramatiq_rabbitmq._RabbitmqConsumer, "_settle")


def test_the_broker_keeps_pending_queues_and_a_per_thread_connection_it_can_drop(
    broker: HooklineBroker,
) -> None:
    assert broker.queues_pending == set()
    assert broker.confirm_delivery
    for name in ("connection", "channel"):
        descriptor = inspect.getattr_static(dramatiq_rabbitmq.RabbitmqBroker, name)
        assert isinstance(descriptor, property)
        assert descriptor.fdel is not None  # publish_confirmed drops a broken one with `del`
    assert (xq_name("q"), q_name("q.DQ"), q_name("q.XQ")) == (TOPOLOGY.crashed_queue("q"), "q", "q")


def test_dramatiq_declares_an_actor_queue_and_its_companions_through_the_methods_hookline_overrides(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    for name in ("_build_queue_arguments", "_declare_xq_queue"):
        method = getattr(dramatiq_rabbitmq.RabbitmqBroker, name)
        assert list(inspect.signature(method).parameters) == ["self", "queue_name"]
    rabbitmq.declare(broker)
    declared = {each["queue"]: each for each in channel.declared}
    queue = TOPOLOGY.events_queue
    # The queue and its .DQ take the same arguments, from _build_queue_arguments.
    assert declared[queue].get("arguments") == declared[f"{queue}.DQ"].get("arguments")
    # hookline's _declare_xq_queue: dramatiq's would give crashed messages a 7-day TTL.
    crashed = declared[TOPOLOGY.crashed_queue(queue)]
    assert crashed["durable"] is True
    assert "x-message-ttl" not in (crashed.get("arguments") or {})


def test_the_events_consumer_wraps_each_raw_body_into_a_fan_out_message(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    deliver(channel, b"\xff not even json", tag=7)
    consumer = broker.consume(TOPOLOGY.events_queue, prefetch=2, timeout=100)
    assert channel.consuming == (TOPOLOGY.events_queue, 0.1)
    assert channel.prefetch == 2 + HELD_ACK_HEADROOM
    message = next(consumer)
    assert message is not None
    assert (message.actor_name, message.queue_name) == (FAN_OUT_ACTOR, TOPOLOGY.events_queue)
    assert message.args == (RawEvent(b"\xff not even json", "order.created", redelivered=False),)
    assert 7 in consumer.known_tags  # type: ignore[attr-defined] # dramatiq's consumer keeps it
    consumer.ack(message)
    assert channel.acked_multiple == [7]  # nothing older is open: one ack covers all up to it


def test_an_ack_waits_for_the_futures_the_actor_held_and_a_failed_one_rejects_the_message(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    deliver(channel, b"{}", tag=1)
    deliver(channel, b"{}", tag=2)
    consumer = broker.consume(TOPOLOGY.events_queue)
    stored, lost = Future[None](), Future[None]()
    heldacks.hold([stored])
    consumer.ack(next(consumer))  # type: ignore[arg-type] # a message is there
    assert channel.acked_multiple == []
    stored.set_result(None)
    assert channel.acked_multiple == [1]
    heldacks.hold([lost])
    consumer.ack(next(consumer))  # type: ignore[arg-type] # as above
    lost.set_exception(RuntimeError("not stored"))
    assert (channel.acked_multiple, channel.nacked) == ([1], [(2, False)])


def test_messages_settled_together_are_acked_in_one_frame_up_to_the_oldest_still_open(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    for tag in (1, 2, 3):
        deliver(channel, b"{}", tag=tag)
    consumer = broker.consume(TOPOLOGY.events_queue)
    first, second, third = (next(consumer) for _ in range(3))
    held = Future[None]()
    heldacks.hold([held])
    consumer.ack(first)  # type: ignore[arg-type] # a message is there
    consumer.ack(third)  # type: ignore[arg-type] # as above
    assert (channel.acked, channel.acked_multiple) == ([3], [])  # 1 and 2 are open: 3 alone
    consumer.nack(second)  # type: ignore[arg-type] # as above
    held.set_result(None)
    assert (channel.nacked, channel.acked_multiple) == ([(2, False)], [1])


def test_a_body_dramatiq_cannot_decode_is_rejected_through_the_book_before_a_later_multiple_ack(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    deliver(channel, b"not a dramatiq message", tag=1)
    deliver(channel, Message("q", "retry", (), {}, {}).encode(), tag=2)
    consumer = broker.consume(TOPOLOGY.retries_queue)
    assert next(consumer) is None  # dramatiq rejects it, with a line of its own
    consumer.ack(next(consumer))  # type: ignore[arg-type] # a message is there
    assert (channel.nacked, channel.acked_multiple) == ([(1, False)], [2])


def test_pika_queues_a_frame_on_the_inner_channel_and_flushes_on_the_blocking_one() -> None:
    # The consumer sends all but the last frame of a batch through BlockingChannel._impl.
    inner = pika.channel.Channel
    assert list(inspect.signature(inner.basic_ack).parameters) == ["self", "delivery_tag", "multiple"]
    nack = list(inspect.signature(inner.basic_nack).parameters)
    assert nack == ["self", "delivery_tag", "multiple", "requeue"]
    for name in ("basic_ack", "basic_nack"):
        source = inspect.getsource(getattr(BlockingChannel, name))
        assert f"self._impl.{name}(" in source
        assert "self._flush_output()" in source


def test_a_vanished_events_queue_is_marked_for_redeclaring_and_closes_the_consumer(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    consumer = broker.consume(TOPOLOGY.events_queue)
    consumer.iterator = iter_raising(pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND"))  # type: ignore[attr-defined] # dramatiq's consumer reads it
    with pytest.raises(ConnectionClosed):
        next(consumer)
    assert TOPOLOGY.events_queue in broker.queues_pending


def iter_raising(error: Exception) -> Iterator[Any]:
    raise error
    yield  # a generator: raises on the first next()


def test_other_queues_get_the_held_ack_consumer_through_consumer_class(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    consumer = broker.consume(TOPOLOGY.retries_queue)
    assert isinstance(consumer, rabbitmq._HeldAckConsumer)
    assert not isinstance(consumer, rabbitmq._EventsConsumer)


def test_a_confirmed_publish_that_failed_drops_the_threads_connection(
    broker: HooklineBroker, channel: FakeChannel
) -> None:
    first = broker.connection
    channel.publish_error = pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        broker.publish_confirmed("somewhere", b"{}", pika.BasicProperties())
    assert broker.connection is not first


# -- dramatiq: the worker and its hooks (workers/broker/heldacks.py, workers/middleware) -----------


def test_the_worker_acks_a_message_on_the_thread_that_ran_its_actor() -> None:
    # heldacks keeps the futures an actor held in a thread-local until the ack takes them.
    ran_on: list[int] = []
    acked_on: list[int] = []

    class RecordingStub(StubBroker):
        def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 100) -> Any:
            consumer = super().consume(queue_name, prefetch, timeout)
            ack = consumer.ack

            def recording_ack(message: Any) -> None:
                acked_on.append(threading.get_ident())
                ack(message)

            consumer.ack = recording_ack  # type: ignore[method-assign] # records, then acks as before
            return consumer

    broker = RecordingStub(middleware=[])
    actor = dramatiq.actor(broker=broker)(lambda: ran_on.append(threading.get_ident()))
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        actor.send()
        broker.join(actor.queue_name, timeout=10_000)
    finally:
        worker.stop()
    assert ran_on == acked_on
    assert len(ran_on) == 1


def test_the_worker_has_the_threads_the_heartbeat_checks() -> None:
    worker = dramatiq.Worker(StubBroker(middleware=[]))
    assert isinstance(worker.workers, list)
    assert isinstance(worker.consumers, dict)


@pytest.mark.parametrize("middleware", [FailOnError, DrainBatches, DrainLogs, Heartbeats])
def test_every_hook_hooklines_middleware_implements_is_one_dramatiq_calls(middleware: type) -> None:
    hooks = [name for name in vars(middleware) if name.startswith(("before_", "after_"))]
    assert hooks
    for name in hooks:
        assert callable(getattr(Middleware, name, None)), f"{middleware.__name__}.{name} is never called"
        ours = list(inspect.signature(getattr(middleware, name)).parameters)
        theirs = list(inspect.signature(getattr(Middleware, name)).parameters)
        assert ours[:3] == theirs[:3], name


def test_the_cli_calls_a_callable_and_then_consumes_from_the_global_broker() -> None:
    previous = dramatiq.get_broker()
    try:
        _, broker = import_broker(f"{__name__}:boot_a_stub")  # type: ignore[no-untyped-call] # unannotated in dramatiq
        assert broker is BOOTED[-1]
    finally:
        dramatiq.set_broker(previous)


BOOTED: list[StubBroker] = []


def boot_a_stub() -> None:
    """What workers.app:boot is to dramatiq's CLI: it sets the global broker and returns."""
    BOOTED.append(StubBroker(middleware=[]))
    dramatiq.set_broker(BOOTED[-1])


def test_the_cli_accepts_the_arguments_hookline_worker_passes() -> None:
    argv = ["workers.app:boot", "--processes", "2", "--threads", "8", "--worker-shutdown-timeout", "60000"]
    parser = make_argument_parser()  # type: ignore[no-untyped-call] # unannotated in dramatiq
    args = parser.parse_args([*argv, "--skip-logging", "--queues", "a.events", "a.retries"])
    assert (args.broker, args.processes, args.threads) == ("workers.app:boot", 2, 8)
    assert (args.worker_shutdown_timeout, args.skip_logging) == (60000, True)
    assert args.queues == ["a.events", "a.retries"]


# -- pika: the frame output hook (producer/publisher.py) -------------------------------------------


def test_every_frame_a_connection_sends_goes_through_the_adapter_hook_the_publisher_coalesces() -> None:
    owners: tuple[Any, ...] = (pika.connection.Connection, BaseConnection)  # pika's stubs leave privates out
    for owner in owners:
        assert list(inspect.signature(owner._adapter_emit_data).parameters) == ["self", "data"]
    assert issubclass(SelectConnection, BaseConnection)
    assert not hasattr(SelectConnection, "_held")  # the publisher's own attribute shadows nothing

    @dataclass
    class Transport:
        written: list[bytes] = field(default_factory=list)

        def write(self, data: bytes) -> None:
            self.written.append(data)

    # No socket, no IO loop; Any, as pika's stubs leave out the private attributes used here.
    connection: Any = _CoalescingConnection.__new__(_CoalescingConnection)
    connection._transport = Transport()  # what BaseConnection writes to
    connection.bytes_sent = connection.frames_sent = 0
    with connection.coalesced():
        connection._output_marshaled_frames([b"method", b"header", b"body"])
    connection._output_marshaled_frames([b"alone"])
    assert connection._transport.written == [b"methodheaderbody", b"alone"]
    assert (connection.frames_sent, connection.bytes_sent) == (4, 21)
