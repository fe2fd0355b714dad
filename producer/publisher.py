"""Publishing events to the exchange, each one confirmed by the broker.

A publish is done only when RabbitMQ has confirmed it (publisher confirms),
and it is sent ``mandatory`` so that an event no queue would take comes back
as :class:`~producer.errors.EventUnroutable` instead of vanishing.

Waiting for each confirm before sending the next caps a publisher at one
event per round trip, as pika's ``BlockingConnection.confirm_delivery()``
does. So confirms are pipelined: one background thread owns the
connection (pika's ``SelectConnection``), callers hand it events through
``add_callback_threadsafe`` and wait on a :class:`~concurrent.futures.Future`
per event, which the thread resolves when the broker's ack, nack, return or
channel error arrives::

    caller threads ──(outbox, batched wake-ups)──► IO thread ──basic.publish──► RabbitMQ
          ▲                                          │  ◄── basic.return / basic.ack / nack
          └────────── Future per event ◄─────────────┘      (by delivery tag, incl. multiple)

A semaphore bounds the events handed over and not yet settled
(``max_outstanding``), so memory stays bounded and a stalled broker slows
callers down instead of queueing without end.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import parse_qs, unquote, urlsplit

import pika
import pika.exceptions
from pika.adapters.select_connection import IOLoop, SelectConnection
from pika.channel import Channel
from pika.spec import Basic, BasicProperties

from producer.errors import (
    BrokerUnavailable,
    ConfigurationError,
    ConfirmTimeout,
    EventNacked,
    EventUnroutable,
    ExchangeNotFound,
    PublishError,
    root_cause,
)
from producer.event import Event
from producer.settings import ProducerSettings, load, node_urls, redacted_url

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds for TCP connect and, separately, the whole AMQP handshake
_TICK = 0.25  # how often the IO thread looks for confirms that are overdue
_GRACE = 5.0  # how much longer than confirm_timeout a caller waits if the IO thread itself is stuck
NOT_FOUND = 404


class Publisher:
    """Publishes :class:`~producer.event.Event` objects with publisher confirms, from any thread.

    The connection opens on first use, is shared by every thread, and is opened
    again on the next call after it was lost. With several nodes in
    ``HOOKLINE_AMQP_URL`` it goes to the first that answers, and after a loss
    starts from the next one. Events in flight on a lost connection fail with
    :class:`BrokerUnavailable` (the broker may or may not have stored them:
    publish them again). :meth:`close` (or leaving a ``with`` block) waits for
    events still unconfirmed, then closes it; a later publish opens a new one.
    """

    def __init__(
        self,
        settings: ProducerSettings | None = None,
        *,
        confirm_timeout: float = 30.0,
        max_outstanding: int = 1000,
    ) -> None:
        if confirm_timeout <= 0 or max_outstanding < 1:
            raise ValueError("confirm_timeout must be > 0 and max_outstanding >= 1")
        self._settings = settings if settings is not None else load(ProducerSettings)
        self._confirm_timeout = confirm_timeout
        self._slots = threading.BoundedSemaphore(max_outstanding)
        self._lock = threading.Lock()
        self._link: _Link | None = None
        self._nodes = node_urls(self._settings.amqp_url)
        self._node = 0  # index in _nodes of the node the next connection tries first

    @property
    def settings(self) -> ProducerSettings:
        return self._settings

    def publish(self, event: Event) -> None:
        """Publish one event and wait for the broker's confirm; raise a :class:`PublishError` if none."""
        future = self.publish_async(event)
        try:
            future.result(timeout=self._confirm_timeout + _GRACE)
        except TimeoutError as exc:
            # Only reached if the IO thread is wedged; it normally fails the future itself in time.
            raise ConfirmTimeout(f"no confirm for event {event.id} within {self._confirm_timeout}s") from exc

    def publish_async(self, event: Event) -> Future[None]:
        """Hand one event over; the future fails with a :class:`PublishError` if it is not confirmed.

        Raises :class:`~producer.errors.InvalidEvent` at once, before sending,
        if the event cannot be encoded or is too large. Blocks while
        ``max_outstanding`` events are unconfirmed. Callbacks added to the
        future run on the IO thread: keep them short.
        """
        body = self._encode(event)
        self._slots.acquire()
        pending = _Pending(event.id, event.type, body, time.monotonic() + self._confirm_timeout)
        self._submit(pending)
        return pending.future

    def publish_many(
        self, events: Iterable[Event], *, on_confirmed: Callable[[int], None] | None = None
    ) -> list[tuple[Event, PublishError]]:
        """Publish events pipelined, and return those that failed (an empty list: all confirmed).

        Every event is encoded before the first is sent, so an invalid one
        raises :class:`~producer.errors.InvalidEvent` and nothing is published;
        for a very long stream, call this once per chunk. Broker failures do
        not raise: each failed event is returned with its error, in input
        order. ``on_confirmed(n)`` is called, in this thread, each time ``n``
        more events have been confirmed.
        """
        encoded = [(event, self._encode(event)) for event in events]
        window: deque[tuple[Event, Future[None]]] = deque()
        failures: list[tuple[Event, PublishError]] = []
        unreachable: BrokerUnavailable | None = None
        for event, body in encoded:
            self._slots.acquire()
            pending = _Pending(event.id, event.type, body, time.monotonic() + self._confirm_timeout)
            if unreachable is None:
                unreachable = self._submit(pending)
            else:
                # Once the broker could not be reached, don't try to connect again for every event.
                pending.settle(self._slots, _copy_error(unreachable))
            window.append((event, pending.future))
            _drain(window, failures, on_confirmed, wait=False)
        _drain(window, failures, on_confirmed, wait=True)
        return failures

    def close(self) -> None:
        """Wait for unconfirmed events (at most ``confirm_timeout``), then close the connection."""
        with self._lock:
            link, self._link = self._link, None
        if link is not None:
            link.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _encode(self, event: Event) -> bytes:
        return event.to_json(max_bytes=self._settings.max_event_bytes)

    def _submit(self, pending: _Pending) -> BrokerUnavailable | None:
        """Give ``pending`` to the IO thread; if the broker cannot be reached, fail it and return why."""
        for _ in range(2):  # a link may die between being handed out and taking the event: retry once
            try:
                link = self._current_link()
            except BrokerUnavailable as exc:
                pending.settle(self._slots, _copy_error(exc))
                return exc
            except BaseException:
                self._slots.release()  # e.g. ConfigurationError: the caller gets it, not a future
                raise
            if link.submit(pending):
                return None
        error = BrokerUnavailable(f"connection to {redacted_url(self._settings.amqp_url)} keeps closing")
        pending.settle(self._slots, error)
        return error

    def _current_link(self) -> _Link:
        with self._lock:
            if self._link is None or not self._link.accepting:
                if self._link is not None:
                    self._node += 1  # the connection was lost: the next one starts at the next node
                self._link = None
                self._link = self._open_link()  # raises BrokerUnavailable; self._link stays None
            return self._link

    def _open_link(self) -> _Link:
        """A connected link to the first node that answers, each node tried once, from ``_node`` on."""
        failures: list[BrokerUnavailable] = []
        for offset in range(len(self._nodes)):
            index = (self._node + offset) % len(self._nodes)
            url = self._nodes[index]
            link = _Link(self._settings, url, self._slots, close_timeout=self._confirm_timeout + _GRACE)
            try:
                link.start()
            except BrokerUnavailable as exc:
                failures.append(exc)
                continue
            self._node = index
            return link
        if len(failures) == 1:
            raise failures[0]
        reasons = "; ".join(str(failure) for failure in failures)
        raise BrokerUnavailable(
            f"none of the {len(failures)} RabbitMQ nodes answered: {reasons}"
        ) from failures[-1]


def _drain(
    window: deque[tuple[Event, Future[None]]],
    failures: list[tuple[Event, PublishError]],
    on_confirmed: Callable[[int], None] | None,
    *,
    wait: bool,
) -> None:
    """Collect settled events from the front of ``window``; with ``wait``, all of them."""
    confirmed = 0
    while window and (wait or window[0][1].done()):
        event, future = window.popleft()
        error = future.exception()  # the IO thread settles every future within confirm_timeout
        if error is None:
            confirmed += 1
        else:
            assert isinstance(error, PublishError)  # noqa: S101 - futures are only failed with these
            failures.append((event, error))
        if on_confirmed is not None and confirmed >= 100:  # progress in steps, not one call per event
            on_confirmed(confirmed)
            confirmed = 0
    if on_confirmed is not None and confirmed:
        on_confirmed(confirmed)


@dataclass(slots=True, eq=False)
class _Pending:
    """One event on its way: handed over, maybe sent, not yet settled."""

    event_id: str
    routing_key: str
    body: bytes
    deadline: float  # time.monotonic() after which it fails with ConfirmTimeout
    future: Future[None] = field(default_factory=Future)
    returned: str | None = None  # the broker's reason, once it returned the event as unroutable

    def __post_init__(self) -> None:
        # RUNNING futures cannot be cancelled, so settling one never races a caller's cancel().
        self.future.set_running_or_notify_cancel()

    def settle(self, slots: threading.BoundedSemaphore, error: PublishError | None) -> None:
        if error is None:
            self.future.set_result(None)
        else:
            self.future.set_exception(error)
        slots.release()


class _CoalescingConnection(SelectConnection):
    """A ``SelectConnection`` that can write many frames with one ``send``.

    pika hands every frame (three per message) to the socket separately, and
    those system calls were the IO thread's largest cost; within
    :meth:`coalesced` the frames are collected and written together.
    """

    _held: list[bytes] | None = None

    def _adapter_emit_data(self, data: bytes) -> None:
        if self._held is None:
            super()._adapter_emit_data(data)  # type: ignore[misc] # pika's adapter hook, not in the stubs
        else:
            self._held.append(data)

    @contextmanager
    def coalesced(self) -> Iterator[None]:
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            if held:
                super()._adapter_emit_data(b"".join(held))  # type: ignore[misc] # as above


class _Link:
    """One AMQP connection to one node and a channel in confirm mode, driven by its own IO thread.

    Everything below :meth:`submit` and :meth:`close` runs on the IO thread;
    ``_lock`` guards only the outbox and the two flags that callers read.
    """

    def __init__(
        self, settings: ProducerSettings, url: str, slots: threading.BoundedSemaphore, *, close_timeout: float
    ) -> None:
        self._url = url  # one node's
        self._parameters = connection_parameters(url)  # raises ConfigurationError here
        self._where = redacted_url(url)  # for messages: never the password
        self._close_timeout = close_timeout
        self._exchange = settings.exchange
        self._slots = slots
        self._ioloop = IOLoop()
        self._lock = threading.Lock()
        self._outbox: deque[_Pending] = deque()
        self._wake_pending = False
        self._accepting = True
        self._ready = threading.Event()
        self._open_error: BrokerUnavailable | None = None
        self._closing = False
        self._connection: _CoalescingConnection | None = None
        self._channel: Channel | None = None  # set once the channel is in confirm mode
        self._retired: set[Channel] = set()  # closing after a nack (see _retire_channel)
        self._channel_opening = False
        self._unconfirmed: OrderedDict[int, _Pending] = OrderedDict()
        self._next_tag = 1
        self._thread = threading.Thread(target=self._run, name="hookline-publisher-io", daemon=True)

    @property
    def accepting(self) -> bool:
        return self._accepting

    # -- called from caller threads ------------------------------------------------------------

    def start(self) -> None:
        """Connect, or raise :class:`BrokerUnavailable`."""
        self._thread.start()
        if not self._ready.wait(2 * CONNECT_TIMEOUT + 1):
            self._ioloop.add_callback_threadsafe(self._ioloop.stop)
            raise BrokerUnavailable(f"no answer from RabbitMQ at {self._where}")
        if self._open_error is not None:
            raise self._open_error
        if not self._accepting:
            raise BrokerUnavailable(f"connection to {self._where} closed while opening")

    def submit(self, pending: _Pending) -> bool:
        """Queue ``pending`` for sending; False if this link is closing or gone."""
        with self._lock:
            if not self._accepting:
                return False
            self._outbox.append(pending)
            if self._wake_pending:
                return True  # the IO thread will take this one with the wake-up already asked for
            self._wake_pending = True
        self._ioloop.add_callback_threadsafe(self._flush)
        return True

    def close(self) -> None:
        with self._lock:
            self._accepting = False
        self._ioloop.add_callback_threadsafe(self._begin_close)
        self._thread.join(self._close_timeout)
        if self._thread.is_alive():
            log.warning("the publisher's connection to %s did not close in time", self._where)

    # -- the IO thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._connection = _CoalescingConnection(
                parameters=self._parameters,
                on_open_callback=self._on_connection_open,
                on_open_error_callback=self._on_connection_open_error,
                on_close_callback=self._on_connection_closed,
                custom_ioloop=self._ioloop,
            )
            self._ioloop.start()
        except Exception as exc:
            # A bug here, not a broker problem; still, callers must not wait for a dead thread.
            log.exception("publisher IO thread failed")
            if not self._ready.is_set():
                self._open_error = BrokerUnavailable(f"publisher failed to connect to {self._where}: {exc!r}")
        finally:
            self._shut_down()

    def _shut_down(self) -> None:
        with self._lock:
            self._accepting = False
            left = [*self._unconfirmed.values(), *self._outbox]
            self._unconfirmed.clear()
            self._outbox.clear()
        # Normally empty here; anything left would otherwise wait forever.
        self._fail_all(left, BrokerUnavailable(f"connection to {self._where} closed"))
        self._ready.set()
        self._ioloop.close()

    def _on_connection_open(self, _connection: SelectConnection) -> None:
        self._open_channel()
        self._ioloop.call_later(_TICK, self._on_tick)

    def _on_connection_open_error(self, _connection: SelectConnection, error: BaseException) -> None:
        reason = _connect_reason(error, self._url)
        self._open_error = BrokerUnavailable(f"cannot connect to RabbitMQ at {self._where}: {reason}")
        self._open_error.__cause__ = error
        self._ioloop.stop()

    def _on_connection_closed(self, _connection: SelectConnection, reason: BaseException) -> None:
        self._channel = None
        with self._lock:
            self._accepting = False
        if not self._closing or self._unconfirmed or self._outbox:
            reason_text = _scrub(str(reason), self._url)
            error = BrokerUnavailable(f"connection to {self._where} lost: {reason_text}")
            error.__cause__ = reason
            self._fail_unconfirmed(error)
            self._fail_outbox(error)
        self._ioloop.stop()

    def _open_channel(self) -> None:
        assert self._connection is not None  # noqa: S101 - set before the IO loop runs
        self._channel_opening = True
        self._connection.channel(on_open_callback=self._on_channel_open)

    def _on_channel_open(self, channel: Channel) -> None:
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_return_callback(self._on_return)
        channel.confirm_delivery(
            lambda frame: self._on_confirm(channel, frame),
            callback=lambda _frame: self._on_confirm_mode(channel),
        )

    def _on_confirm_mode(self, channel: Channel) -> None:
        self._channel = channel
        self._channel_opening = False
        self._next_tag = 1  # delivery tags count from 1 on each channel
        self._ready.set()
        self._flush()

    def _on_channel_closed(self, channel: Channel, reason: Exception) -> None:
        if channel in self._retired:
            self._retired.remove(channel)  # closed on purpose, its events already settled
            self._maybe_finish_close()
            return
        was_open, self._channel = self._channel is not None, None
        self._channel_opening = False
        if self._connection is None or not self._connection.is_open:
            return  # the whole connection is going: _on_connection_closed settles everything
        error = self._channel_error(reason)
        self._fail_unconfirmed(error)
        if not self._ready.is_set():
            self._open_error = BrokerUnavailable(f"cannot open a channel on {self._where}: {error}")
            self._connection.close()
        elif not was_open:
            self._fail_outbox(error)  # failed while opening: reopening at once could loop forever
        elif self._outbox:
            self._open_channel()
        self._maybe_finish_close()

    def _channel_error(self, reason: Exception) -> PublishError:
        code = getattr(reason, "reply_code", None)
        text = getattr(reason, "reply_text", str(reason))
        if code == NOT_FOUND:
            error: PublishError = ExchangeNotFound(
                f"exchange {self._exchange!r} does not exist on {self._where}: "
                f"run `hookline setup` to declare it ({code} {text})"
            )
        else:
            error = PublishError(f"the broker closed the channel: {code} {text}")
        error.__cause__ = reason
        return error

    def _flush(self) -> None:
        with self._lock:
            self._wake_pending = False
            if self._channel is None:
                batch: deque[_Pending] = deque()
            else:
                batch, self._outbox = self._outbox, deque()
        if self._channel is None:
            if self._outbox and not self._channel_opening:
                self._open_channel()  # the rest waits in the outbox and goes out once it is open
            return
        assert self._connection is not None  # noqa: S101 - a channel implies a connection
        with self._connection.coalesced():
            for pending in batch:
                self._send(self._channel, pending)

    def _send(self, channel: Channel, pending: _Pending) -> None:
        properties = BasicProperties(
            content_type="application/json",
            delivery_mode=pika.DeliveryMode.Persistent,
            message_id=pending.event_id,
        )
        channel.basic_publish(self._exchange, pending.routing_key, pending.body, properties, mandatory=True)
        self._unconfirmed[self._next_tag] = pending
        self._next_tag += 1

    def _on_return(
        self, channel: Channel, method: Basic.Return, properties: BasicProperties, _body: bytes
    ) -> None:
        if channel is not self._channel:
            return  # a retired channel's: its events were settled when it was retired
        # The broker sends basic.return before the ack of the same message, in publishing order,
        # so the returned one is the oldest unconfirmed event with this id and type not yet marked.
        for pending in self._unconfirmed.values():
            if (
                pending.returned is None
                and pending.event_id == properties.message_id
                and pending.routing_key == method.routing_key
            ):
                pending.returned = f"{method.reply_code} {method.reply_text}"
                return
        log.warning("the broker returned a message this publisher does not know: %r", properties.message_id)

    def _on_confirm(self, channel: Channel, frame: pika.frame.Method[Basic.Ack | Basic.Nack]) -> None:
        if channel is not self._channel:
            return  # a retired channel's: its delivery tags are not the current channel's
        method = frame.method
        nacked = isinstance(method, Basic.Nack)
        if method.multiple:
            while self._unconfirmed and next(iter(self._unconfirmed)) <= method.delivery_tag:
                self._settle(self._unconfirmed.popitem(last=False)[1], nacked=nacked)
        else:
            pending = self._unconfirmed.pop(method.delivery_tag, None)
            if pending is not None:  # None: it already failed with ConfirmTimeout
                self._settle(pending, nacked=nacked)
        if nacked:
            self._retire_channel()
        self._maybe_finish_close()

    def _retire_channel(self) -> None:
        """After a nack, fail what is still unconfirmed on the channel and go on on a new one.

        RabbitMQ 3.10 can leave a channel sending a quorum queue's messages to a leader the queue
        lost; that channel then refuses (nacks) every later publish to the queue, for good, while a
        new channel is fine. Elsewhere a nack is rare (a full queue that rejects publishes), so a
        new channel then costs little. The events failed here may have been stored: as for any
        failure, the caller publishes them again.
        """
        channel, self._channel = self._channel, None
        if channel is None:
            return
        self._retired.add(channel)
        self._fail_unconfirmed(
            PublishError("not confirmed: the channel was replaced after the broker refused an event")
        )
        channel.close()
        if self._outbox and not self._channel_opening:
            self._open_channel()

    def _settle(self, pending: _Pending, *, nacked: bool) -> None:
        error: PublishError | None = None
        if pending.returned is not None:
            error = EventUnroutable(
                f"event {pending.event_id} was returned by the broker: no queue is bound to exchange "
                f"{self._exchange!r} for routing key {pending.routing_key!r} ({pending.returned})"
            )
        elif nacked:
            error = EventNacked(f"the broker refused event {pending.event_id} (nack)")
        pending.settle(self._slots, error)

    def _on_tick(self) -> None:
        now = time.monotonic()
        overdue: list[_Pending] = []
        while self._unconfirmed and next(iter(self._unconfirmed.values())).deadline < now:
            overdue.append(self._unconfirmed.popitem(last=False)[1])
        with self._lock:
            while self._outbox and self._outbox[0].deadline < now:
                overdue.append(self._outbox.popleft())
        for pending in overdue:
            pending.settle(self._slots, ConfirmTimeout(f"no confirm for event {pending.event_id} in time"))
        self._maybe_finish_close()
        if self._connection is not None and self._connection.is_open:
            self._ioloop.call_later(_TICK, self._on_tick)

    def _begin_close(self) -> None:
        self._closing = True
        self._flush()  # events handed over before close() still go out, and are waited for
        self._maybe_finish_close()

    def _maybe_finish_close(self) -> None:
        if not self._closing or self._unconfirmed or self._outbox:
            return
        if self._connection is not None and self._connection.is_open:
            self._connection.close()
        elif self._connection is None or self._connection.is_closed:
            self._ioloop.stop()

    def _fail_unconfirmed(self, error: PublishError) -> None:
        failed = list(self._unconfirmed.values())
        self._unconfirmed.clear()
        self._fail_all(failed, error)

    def _fail_outbox(self, error: PublishError) -> None:
        with self._lock:
            failed, self._outbox = list(self._outbox), deque()
        self._fail_all(failed, error)

    def _fail_all(self, failed: list[_Pending], error: PublishError) -> None:
        for pending in failed:
            pending.settle(self._slots, _copy_error(error))


def _copy_error(error: PublishError) -> PublishError:
    """A fresh instance per event: a raised exception collects its traceback on itself."""
    copy = type(error)(*error.args)
    copy.__cause__ = error.__cause__
    return copy


def connection_parameters(url: str) -> pika.URLParameters:
    """pika parameters for ``url``, failing fast (seconds, not minutes) when the broker is away."""
    try:
        parameters = pika.URLParameters(url)
    except ValueError as exc:
        raise ConfigurationError(f"invalid setting HOOKLINE_AMQP_URL: {_scrub(str(exc), url)}") from None
    given = parse_qs(urlsplit(url).query)
    if "socket_timeout" not in given:
        parameters.socket_timeout = CONNECT_TIMEOUT
    if "stack_timeout" not in given:
        parameters.stack_timeout = CONNECT_TIMEOUT
    if "client_properties" not in given:
        # Names the connection in the management UI, so an operator can tell who is publishing.
        parameters.client_properties = {"connection_name": f"hookline publisher (pid {os.getpid()})"}
    return parameters


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL's password replaced, in case a library message quoted it."""
    password = urlsplit(url).password
    if password:
        for form in {password, unquote(password)}:
            text = text.replace(form, "***")
    return text


def _connect_reason(error: BaseException, url: str) -> str:
    """The cause of a failed connect in a few words, from pika's nested exceptions."""
    if isinstance(error, pika.exceptions.ProbableAuthenticationError):
        return "login refused: check the user and password in HOOKLINE_AMQP_URL"
    if isinstance(error, pika.exceptions.ProbableAccessDeniedError):
        return "access to the virtual host refused: check the vhost in HOOKLINE_AMQP_URL"
    error = root_cause(error)
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return _scrub(f"{type(error).__name__}: {error}", url)
