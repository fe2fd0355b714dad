"""Publishing the events of many requests at once through one producer :class:`~producer.publisher.Publisher`.

Every request in flight hands its event to the same publisher, whose IO thread
sends them as they come and settles each on the broker's confirm (pipelined, as
``publish_many`` does), so the API's rate is not one event per broker round
trip. A request waits for its own confirm only: 202 means RabbitMQ stored it.

The event loop never calls the publisher itself, because the publisher
connects on first use and after a lost connection, which can block for
seconds, and the loop serves every other request and the probes. A hand-over
thread takes the events from an inbox instead, and confirms come back to the
loop in batches: one wake-up of the loop for all the confirms that arrived
meanwhile, not one per event. At most :data:`MAX_IN_FLIGHT` events are
unconfirmed; more requests wait their turn without blocking anything.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from concurrent.futures import Future
from functools import partial

from producer.event import Event
from producer.publisher import Publisher
from workers.settings import Settings

MAX_IN_FLIGHT = 2000
CONFIRM_TIMEOUT = 10.0  # seconds; a client's own timeout is rarely longer than a few of these

Waiting = asyncio.Future[None]


class EventPublisher:
    """Publishes events with confirms for async callers; :meth:`close` waits for those in flight."""

    def __init__(self, settings: Settings, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._publisher = Publisher(settings, confirm_timeout=CONFIRM_TIMEOUT, max_outstanding=max_in_flight)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._inbox: deque[tuple[Event, Waiting]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._settled: deque[tuple[Waiting, BaseException | None]] = deque()
        self._settling = False  # a batch of confirms is already on its way to the loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._hand_over, name="hookline-api-publish", daemon=True)
        self._thread.start()

    async def publish(self, event: Event) -> None:
        """Return once RabbitMQ confirmed ``event``; raise a PublishError (or InvalidEvent) if it did not."""
        async with self._slots:  # so that publish_async never blocks the hand-over thread on its own limit
            self._loop = loop = asyncio.get_running_loop()
            waiting: Waiting = loop.create_future()
            self._inbox.append((event, waiting))
            self._wake.set()
            await waiting

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=CONFIRM_TIMEOUT)
        self._publisher.close()

    def _hand_over(self) -> None:
        while not self._closed:
            self._wake.wait()
            self._wake.clear()
            while self._inbox:
                event, waiting = self._inbox.popleft()
                try:
                    confirmed = self._publisher.publish_async(event)
                except Exception as exc:  # noqa: BLE001 - handed to the request, which raises it
                    self._settle(waiting, exc)
                    continue
                confirmed.add_done_callback(partial(self._confirmed, waiting))

    def _confirmed(self, waiting: Waiting, confirmed: Future[None]) -> None:
        self._settle(waiting, confirmed.exception())

    def _settle(self, waiting: Waiting, error: BaseException | None) -> None:
        with self._lock:
            self._settled.append((waiting, error))
            if self._settling:
                return
            self._settling = True
        assert self._loop is not None  # noqa: S101 - set before anything reaches the inbox
        self._loop.call_soon_threadsafe(self._settle_batch)

    def _settle_batch(self) -> None:
        """On the loop: settle every request whose confirm (or failure) arrived since the last batch."""
        with self._lock:
            batch, self._settled = self._settled, deque()
            self._settling = False
        for waiting, error in batch:
            if waiting.done():
                continue  # its request was cancelled: the client went away
            if error is None:
                waiting.set_result(None)
            else:
                waiting.set_exception(error)
