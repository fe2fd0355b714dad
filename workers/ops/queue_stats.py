"""Queue depths and consumer counts, read from RabbitMQ with passive declares.

A passive ``queue.declare`` creates nothing and answers with the queue's ready
message count and its consumer count. Queues are reported by their role, not
their name, so dashboards and alerts work whatever ``HOOKLINE_QUEUE_PREFIX``
is; the 17 delay queues add up to ``delayed`` and dramatiq's two ``.XQ``
queues to ``crashed``. Messages a consumer holds unacked are not counted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.nodes import Nodes
from workers.broker.topology import Topology
from workers.errors import BrokerUnreachable, describe_cause

# role -> what it holds; docs/metrics.md (hookline_queue_messages) lists the same.
ROLES = ("events", "retries", "delayed", "dead_letters", "invalid_events", "crashed", "log", "invalid_log")
# Roles whose queues have consumers: a zero there means no worker (or, for the log, no recorder) takes it.
CONSUMED = ("events", "retries", "log")
TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class QueueStats:
    messages: dict[str, int] = field(default_factory=dict)  # role -> ready messages
    consumers: dict[str, int] = field(default_factory=dict)  # consumed role -> consumers
    missing: tuple[str, ...] = ()  # queue names that do not exist (`hookline setup` not run)


def queues_by_role(topology: Topology) -> dict[str, list[str]]:
    return {
        "events": [topology.events_queue],
        "retries": [topology.retries_queue],
        "delayed": list(topology.delay_queues.values()),
        "dead_letters": [topology.dead_letters_queue],
        "invalid_events": [topology.invalid_events_queue],
        "crashed": [topology.crashed_queue(queue) for queue in topology.actor_queues],
        "log": [topology.log_queue],
        "invalid_log": [topology.invalid_log_queue],
    }


class QueueReader:
    """Reads :class:`QueueStats` over one connection, kept between reads and reopened when it broke.

    Safe to call from several threads (reads take turns). Each read costs one
    round trip per queue (about 25), a few milliseconds on a nearby broker.
    """

    def __init__(self, amqp_url: str, topology: Topology, timeout: float = TIMEOUT_SECONDS) -> None:
        # With several nodes, a reconnect after a lost connection tries the next node first.
        self._nodes = Nodes(amqp_url, timeout=timeout, blocked_timeout=timeout)
        self._where = self._nodes.where
        self._roles = queues_by_role(topology)
        self._lock = threading.Lock()
        self._connection: pika.BlockingConnection | None = None

    def read(self) -> QueueStats:
        """The current stats; raises BrokerUnreachable after one reconnect attempt."""
        with self._lock:
            if self._connection is not None:
                try:
                    return self._read()
                except (pika.exceptions.AMQPError, OSError):
                    self._drop()  # an idle connection the broker closed: once more, on a fresh one
            try:
                return self._read()
            except (pika.exceptions.AMQPError, OSError) as exc:
                self._drop()
                raise BrokerUnreachable(
                    f"cannot read queues on {self._where}: {describe_cause(exc)}"
                ) from exc

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _read(self) -> QueueStats:
        if self._connection is None or not self._connection.is_open:
            self._connection = self._nodes.connect()
        channel = self._connection.channel()
        messages: dict[str, int] = {}
        consumers: dict[str, int] = {}
        missing: list[str] = []
        for role, names in self._roles.items():
            messages[role] = 0
            for name in names:
                counts = self._declare(channel, name)
                if counts is None:
                    missing.append(name)
                    channel = self._connection.channel()  # the broker closed the channel on the 404
                    continue
                messages[role] += counts[0]
                if role in CONSUMED:
                    consumers[role] = counts[1]
        channel.close()
        return QueueStats(messages, consumers, tuple(missing))

    @staticmethod
    def _declare(channel: BlockingChannel, queue: str) -> tuple[int, int] | None:
        try:
            method = channel.queue_declare(queue, passive=True).method
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        return method.message_count or 0, method.consumer_count or 0

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (pika.exceptions.AMQPError, OSError):
                return  # already broken: nothing left to close politely
