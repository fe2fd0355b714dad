"""The broker's nodes: ``HOOKLINE_AMQP_URL``'s URLs as pika parameters, tried in turn.

``HOOKLINE_AMQP_URL`` names one node, or every node of a cluster separated by
commas. pika's ``BlockingConnection`` takes a list of parameters and connects
to the first node that answers. Each new connection gets the list starting one
node further along, so connections spread over the nodes, and one that replaces
a lost connection tries the next node first instead of the one that just went
away (a node that is down costs a refused connect, or the connect timeout if
its host does not answer at all).

Everything that opens a ``BlockingConnection`` (dramatiq's consumers and
publishers, the delay batcher, queue statistics, ``hookline dlq``, the bench)
connects through :class:`Nodes`; the producer has its own loop over the same
URLs (:mod:`producer.publisher`), and the bench's baseline loop, kept plain,
hands pika the list itself.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import pika
import pika.exceptions

from producer.settings import node_urls, redacted_url

# Seconds to wait before each new attempt at a publish whose node went away, or whose quorum
# queue was between leaders and refused it (an election takes a second or two): 7.75 s in all.
REPUBLISH_PAUSES = (0.25, 0.5, 1.0, 2.0, 4.0)
SERVER_ERRORS = 500  # AMQP reply codes from here on are the broker's trouble, not the request's


class Nodes:
    """The nodes of one ``HOOKLINE_AMQP_URL``, handed out a node further along for each connection.

    ``name`` labels the connections in the management UI (with the process id);
    ``timeout`` bounds the TCP connect and the AMQP handshake, ``blocked_timeout``
    how long a connection RabbitMQ blocked (memory or disk alarm) may stay so.
    Either is left alone where the URL's query string sets it.
    """

    def __init__(
        self,
        amqp_url: str,
        *,
        name: str | None = None,
        timeout: float | None = None,
        blocked_timeout: float | None = None,
    ) -> None:
        self.urls = node_urls(amqp_url)
        if not self.urls:
            raise ValueError("no broker URL given")
        self.where = redacted_url(amqp_url)  # for messages: never a password
        self._name = name
        self._timeouts = {"socket_timeout": timeout, "stack_timeout": timeout}
        self._timeouts["blocked_connection_timeout"] = blocked_timeout
        self._turns = itertools.count()  # next() is atomic: safe from any thread

    def parameters(self) -> list[pika.URLParameters]:
        """Every node's parameters, starting one node further along than the previous call."""
        start = next(self._turns) % len(self.urls)
        return [self._parameters(url) for url in [*self.urls[start:], *self.urls[:start]]]

    def connect(self) -> pika.BlockingConnection:
        """A connection to the first node that answers; pika's AMQPConnectionError if none does."""
        return pika.BlockingConnection(self.parameters())

    def _parameters(self, url: str) -> pika.URLParameters:
        parameters = pika.URLParameters(url)
        given = parse_qs(urlsplit(url).query)
        for option, value in self._timeouts.items():
            if value is not None and option not in given:
                setattr(parameters, option, value)
        if self._name is not None and "client_properties" not in given:
            # Built per connection, so the pid is the process that connects (workers fork).
            parameters.client_properties = {"connection_name": f"{self._name} (pid {os.getpid()})"}
        return parameters


def publish_confirmed(publish: Callable[[], None], *, reconnect: Callable[[], None]) -> None:
    """Run ``publish`` (a confirmed, mandatory publish) until the broker confirms it, or raise its error.

    A lost connection, a nack or a server error is tried again, after each of
    :data:`REPUBLISH_PAUSES`, on a fresh connection that ``reconnect`` makes the
    next one to open, which starts at the next node: a node that stops, or a
    queue that moves to a new leader, delays a publish and does not fail it.
    What waiting cannot mend fails at once: an unroutable message (no such
    queue), a channel closed for a client error (access refused, say). A publish
    whose confirm was lost with its connection may be stored twice: never lost.
    """
    for pause in (*REPUBLISH_PAUSES, None):
        try:
            publish()
        except pika.exceptions.AMQPError as exc:
            if pause is None or not _transient(exc):
                raise
            reconnect()
            time.sleep(pause)
        else:
            return


def _transient(error: pika.exceptions.AMQPError) -> bool:
    if isinstance(error, pika.exceptions.ChannelClosedByBroker):
        return error.reply_code >= SERVER_ERRORS  # 4xx: the client's mistake, which a retry repeats
    transient = (pika.exceptions.AMQPConnectionError, pika.exceptions.NackError)
    return isinstance(error, (*transient, pika.exceptions.ChannelWrongStateError))
