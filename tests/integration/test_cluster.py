"""Losing the broker node that leads hookline's queues loses no event and no retry.

A real three-node RabbitMQ cluster on loopback (tests/support/cluster.py), quorum
queues, two ``hookline worker`` processes and the Python producer, all given
every node in ``HOOKLINE_AMQP_URL``. Every fourth event fails its first
attempt, so retries wait in the delay queues; while events are being
published and retries are waiting, the node that leads the queues is stopped.
The other two go on: every event reaches the receiver while that node is
down. Then it comes back, as Kubernetes restarts a broker pod, every retry
fires, and nothing was parked anywhere.

Why the node comes back before the retries are checked: RabbitMQ 3.10's
at-least-once dead-lettering (delay queue to retries queue) can stall while
the node that led the retries queue is down (its dead-letter worker keeps
sending to the lost leader); the retries stay in the delay queue, and move on
once the node is back and the worker's confirm timeout has passed (5 s here,
``dead_letter_worker_publisher_confirm_timeout``; 3 minutes by default).
docs/deployment.md says so.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.cluster import Cluster, Node, rabbitmq_cluster
from support.processes import Worker, messages, run_hookline, run_json, wait_until
from support.receiver import Received, Receiver
from support.recording import LogContents, RecorderProcess, read_log

from producer.errors import PublishError
from producer.event import Event
from producer.publisher import Publisher
from producer.settings import ProducerSettings
from workers.broker.topology import Topology

pytestmark = pytest.mark.integration

MIN_EVENTS = 2000  # published at least; publishing goes on until the node has been down a while
MAX_EVENTS = 20_000  # a stop that never happens must not keep the test publishing for ever
CHUNK = 50
FAIL_FIRST_EVERY = 4  # events whose number is a multiple of this fail their first attempt
STOP_AFTER = MIN_EVENTS // 3  # confirmed events before the leader is stopped
RABBIT = {"dead_letter_worker_publisher_confirm_timeout": 5000}  # milliseconds


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with rabbitmq_cluster(3, rabbit_settings=RABBIT) as running:
        yield running


@pytest.fixture
def env(hookline_env: dict[str, str], cluster: Cluster) -> dict[str, str]:
    """The test's own settings on the cluster: every node listed, a short retry, set up."""
    hookline_env["HOOKLINE_AMQP_URL"] = cluster.amqp_url
    hookline_env.update({"HOOKLINE_RETRY_SCHEDULE": "2s", "HOOKLINE_RETRY_JITTER": "0"})
    hookline_env["HOOKLINE_BREAKER_FAILURES"] = "1000"  # the failures are planned, not an outage
    run_hookline(hookline_env, "setup")
    return hookline_env


@pytest.fixture
def recorder(env: dict[str, str], tmp_path: Path) -> Iterator[RecorderProcess]:
    """A recorder on the cluster, writing the delivery log for the whole test."""
    running = RecorderProcess(env, tmp_path / "recorder.log", "--metrics-port", "0").start()
    yield running
    running.kill()


@pytest.mark.usefixtures("recorder")
def test_losing_the_node_that_leads_the_queues_loses_no_event_and_no_retry(
    env: dict[str, str],
    cluster: Cluster,
    hook_receiver: Receiver,
    workers: list[Worker],
    tmp_path: Path,
) -> None:
    amqp_url, topology = env["HOOKLINE_AMQP_URL"], topology_of(env)
    leader = cluster.node(cluster.leaders()[topology.events_queue])
    receiver = FailsFirstAttempts()
    hook_receiver.respond = receiver
    run_json(env, "subscriptions", "add", "--url", f"{hook_receiver.url}/hooks", "--event", "#")
    for number in range(2):
        worker = Worker(env, tmp_path / f"worker-{number}.log")
        workers.append(worker.start([topology.events_queue, topology.retries_queue]))

    stopping = StopWhenRetriesWait(cluster, leader, amqp_url, topology)
    published = publish_across(stopping, env)
    assert stopping.retries_waiting > 0, "the node was stopped before any retry was waiting"

    receiver.expect(published)
    wait_until(receiver.first_attempts_made, timeout=120, what="every first attempt, one node down")
    assert leader.name in cluster.stopped
    assert cluster.leaders()[topology.events_queue] in {node.name for node in cluster.running()}

    cluster.start(leader)
    wait_until(receiver.everything_delivered, timeout=120, what="every retry, the node back")
    wait_until(lambda: waiting(amqp_url, topology) == 0, timeout=30, what="no retry left")
    assert parked(amqp_url, topology) == {}
    published_ids = {event.id for event in published}
    wait_until(
        lambda: all_recorded(read_log(env["HOOKLINE_DATABASE_URL"]), published_ids),
        timeout=60,
        what="every event and delivery in the log",
        log=tmp_path / "recorder.log",
    )
    contents = read_log(env["HOOKLINE_DATABASE_URL"])
    assert set(contents.event_ids.values()) == {1}
    assert all(numbers == sorted(set(numbers)) for numbers in contents.attempt_numbers().values())


def all_recorded(contents: LogContents, published: set[str]) -> bool:
    """Every published event in the log, each with its one delivery, delivered."""
    delivered = {event_id for event_id, _sub, _run, state, _n in contents.deliveries if state == "delivered"}
    return contents.event_ids.keys() >= published and delivered >= published


class FailsFirstAttempts:
    """The receiver: 503 to the first attempt of every FAIL_FIRST_EVERY-th event, 200 otherwise."""

    def __init__(self) -> None:
        self.attempts: dict[str, int] = {}
        self.delivered: set[str] = set()
        self.published: set[str] = set()
        self.fail_first: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, request: Received) -> int:
        webhook_id = request.headers["webhook-id"]
        with self.lock:
            self.attempts[webhook_id] = self.attempts.get(webhook_id, 0) + 1
            if fails_first(json.loads(request.body)["data"]["n"]) and self.attempts[webhook_id] == 1:
                return 503
            self.delivered.add(webhook_id)
            return 200

    def expect(self, events: list[Event]) -> None:
        with self.lock:
            self.published = {event.id for event in events}
            self.fail_first = {event.id for event in events if fails_first(event.data["n"])}

    def first_attempts_made(self) -> bool:
        """Every event delivered at its first attempt or, if it fails first, attempted."""
        with self.lock:
            return (
                self.delivered | self.fail_first >= self.published and self.attempts.keys() >= self.published
            )

    def everything_delivered(self) -> bool:
        with self.lock:
            return self.delivered >= self.published


def fails_first(number: int) -> bool:
    return number % FAIL_FIRST_EVERY == 0


class StopWhenRetriesWait:
    """Stops ``leader`` once STOP_AFTER events are confirmed and some retries wait in the delay queues.

    On its own thread, so the publisher goes on publishing while the node goes away.
    """

    def __init__(self, cluster: Cluster, leader: Node, amqp_url: str, topology: Topology) -> None:
        self.confirmed = 0
        self.retries_waiting = 0
        self.stopped_at: float | None = None
        self._stop = lambda: self._wait_then_stop(cluster, leader, amqp_url, topology)
        self._thread: threading.Thread | None = None

    def count(self, confirmed: int) -> None:
        self.confirmed += confirmed
        if self._thread is None and self.confirmed >= STOP_AFTER:
            self._thread = threading.Thread(target=self._stop, daemon=True)
            self._thread.start()

    def down_for(self, seconds: float) -> bool:
        return self.stopped_at is not None and time.monotonic() - self.stopped_at >= seconds

    def _wait_then_stop(self, cluster: Cluster, leader: Node, amqp_url: str, topology: Topology) -> None:
        wait_until(lambda: waiting(amqp_url, topology) > 0, timeout=30, what="retries waiting")
        self.retries_waiting = waiting(amqp_url, topology)
        cluster.stop(leader)
        self.stopped_at = time.monotonic()


def publish_across(stopping: StopWhenRetriesWait, env: dict[str, str]) -> list[Event]:
    """Publish with the Python producer until the node has been down a while; what was not confirmed, again.

    A publisher must publish again what the broker did not confirm (the wire contract says so):
    the producer reports each such event, and here they are published until confirmed.
    """
    settings = ProducerSettings(amqp_url=env["HOOKLINE_AMQP_URL"], exchange=env["HOOKLINE_EXCHANGE"])
    events: list[Event] = []
    unconfirmed: list[tuple[Event, PublishError]] = []
    with Publisher(settings, confirm_timeout=20) as publisher:
        while len(events) < MAX_EVENTS and (len(events) < MIN_EVENTS or not stopping.down_for(1.0)):
            chunk = [Event.create("order.created", {"n": len(events) + n}) for n in range(CHUNK)]
            events += chunk
            unconfirmed += publisher.publish_many(chunk, on_confirmed=stopping.count)
        unconfirmed = republish(publisher, unconfirmed, on_confirmed=stopping.count)
    assert unconfirmed == [], f"{len(unconfirmed)} events never confirmed: {unconfirmed[0][1]}"
    return events


def republish(
    publisher: Publisher, failed: list[tuple[Event, PublishError]], on_confirmed: Callable[[int], None]
) -> list[tuple[Event, PublishError]]:
    # While a queue elects its new leader RabbitMQ refuses (nacks) what is published to it: back off.
    for _ in range(30):
        if not failed:
            break
        time.sleep(1)
        failed = publisher.publish_many([event for event, _error in failed], on_confirmed=on_confirmed)
    return failed


def topology_of(env: dict[str, str]) -> Topology:
    return Topology(exchange=env["HOOKLINE_EXCHANGE"], prefix=env["HOOKLINE_QUEUE_PREFIX"])


def waiting(amqp_url: str, topology: Topology) -> int:
    """Messages in the delay queues and the retries queue (each holds one or more deliveries)."""
    queues = [*topology.delay_queues.values(), topology.retries_queue]
    return sum(messages(amqp_url, queue) for queue in queues)


def parked(amqp_url: str, topology: Topology) -> dict[str, int]:
    """The queues where nothing may land in this test, with what they hold, if anything."""
    queues = [topology.dead_letters_queue, topology.invalid_events_queue]
    queues += [topology.crashed_queue(queue) for queue in topology.actor_queues]
    counts = {queue: messages(amqp_url, queue) for queue in queues}
    return {queue: count for queue, count in counts.items() if count}
