"""Subscription changes, told to every worker process so that its cache reloads at once.

Each worker process keeps the subscriptions in memory and reloads them every
``HOOKLINE_SUBSCRIPTION_REFRESH_SECONDS``; an event published right after a
subscription was added would otherwise find no subscriber in that window. So
whatever changes a subscription (the CLI, auto-disable) announces it, after
the database committed, on a fanout exchange
(``<prefix>.subscriptions.changed``), and each worker process listens on a
queue of its own (exclusive: it goes away with the process) and reloads when
it hears anything.

An announcement is a hint, not the record: it carries no data, is not
confirmed, and a lost one (the broker down, a listener reconnecting) costs only
the wait for the periodic reload, which stays. The announcing command never
fails because of it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from workers.broker.nodes import Nodes
from workers.errors import describe_cause
from workers.observability.logs import get_logger

log = get_logger(component="subscription_changes")

ANNOUNCE_TIMEOUT_SECONDS = 2.0  # a command waits no longer than this to tell the workers
LISTEN_TICK_SECONDS = 1.0  # how often a quiet listener looks up to see if it must stop
RECONNECT_PAUSE_SECONDS = 2.0


def declare(channel: BlockingChannel, exchange: str) -> None:
    channel.exchange_declare(exchange, exchange_type="fanout", durable=True)


def announce(amqp_url: str, exchange: str) -> str | None:
    """Tell every listening worker that subscriptions changed; why not, if the broker was not there."""
    nodes = Nodes(amqp_url, name="hookline subscription change", timeout=ANNOUNCE_TIMEOUT_SECONDS)
    try:
        connection = nodes.connect()
        try:
            channel = connection.channel()
            declare(channel, exchange)
            channel.basic_publish(exchange, "", b"", pika.BasicProperties(content_type="text/plain"))
        finally:
            connection.close()
    except pika.exceptions.AMQPError as exc:
        return f"{nodes.where}: {describe_cause(exc)}"
    return None


class Listener:
    """A daemon thread that calls ``on_change`` whenever a change is announced; reconnects on its own."""

    def __init__(self, amqp_url: str, exchange: str, on_change: Callable[[], None]) -> None:
        self._nodes = Nodes(amqp_url, name="hookline subscription listener")
        self._exchange = exchange
        self._on_change = on_change
        self._stopped = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._listen_forever, name="subscription-changes", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_listening(self, timeout: float) -> bool:
        """True once the listener's queue is bound (tests and start-up wait for it)."""
        return self._connected.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=LISTEN_TICK_SECONDS * 3)

    def _listen_forever(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except Exception as exc:  # noqa: BLE001 - the listener must outlive any failure; reloads go on
                self._connected.clear()
                error = type(exc).__name__
                log.warning("subscription_listener_reconnecting", broker=self._nodes.where, error=error)
                # Changes announced meanwhile were not heard: reload once, as if one had been.
                self._stopped.wait(RECONNECT_PAUSE_SECONDS)
                self._on_change()

    def _listen(self) -> None:
        connection = self._nodes.connect()
        try:
            channel = connection.channel()
            declare(channel, self._exchange)
            # Server-named, exclusive, auto-deleted: a classic queue that lives as long as this
            # process's connection (quorum queues cannot be exclusive).
            queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
            channel.queue_bind(queue, self._exchange)
            self._connected.set()
            for method, _properties, _body in channel.consume(
                queue, auto_ack=True, inactivity_timeout=LISTEN_TICK_SECONDS
            ):
                if self._stopped.is_set():
                    break
                if method is not None:
                    self._on_change()
        finally:
            with contextlib.suppress(pika.exceptions.AMQPError):
                if connection.is_open:
                    connection.close()
