"""Acks that wait until what a message handed on is stored.

A message may be acked only once each of its deliveries is delivered,
dead-lettered, or stored in a delay queue, and the records it made for the
delivery log are stored in the log queue. Both are done in batches
(workers/broker/delaybatch.py, recordbatch.py), and a worker thread that
waited for its batch's confirm would sit idle for the batch's linger. So the actor *holds* the
futures of what it handed on (:func:`hold`) and returns; when dramatiq then
acks the message, on the same worker thread, the consumer takes them
(:func:`take`) and sends the ack only once they all succeeded, from whichever
thread settles the last. If one failed, the message is rejected instead, and
RabbitMQ keeps it in ``<queue>.XQ``, as if the actor had raised.

Held messages still count against the consumer's prefetch, so a broker that is
slow to confirm slows consumption down instead of piling up work in memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future

_local = threading.local()


def hold(futures: Iterable[Future[None]]) -> None:
    """Make the ack of the message this thread is processing wait for ``futures``."""
    held: list[Future[None]] = getattr(_local, "held", None) or []
    held.extend(futures)
    _local.held = held


def take() -> list[Future[None]]:
    """The futures held for the message this thread is processing, and forget them."""
    held: list[Future[None]] = getattr(_local, "held", None) or []
    _local.held = None
    return held


def pending(futures: list[Future[None]]) -> bool:
    """True if the ack must wait: a future is not done, or one failed."""
    return any(not future.done() or future.exception() is not None for future in futures)


def when_settled(futures: list[Future[None]], then: Callable[[BaseException | None], None]) -> None:
    """Call ``then(first error or None)`` once, when every one of ``futures`` is done."""
    lock = threading.Lock()
    left = [len(futures)]
    errors: list[BaseException] = []

    def settled(future: Future[None]) -> None:
        error = future.exception()
        with lock:
            if error is not None:
                errors.append(error)
            left[0] -= 1
            last = left[0] == 0
        if last:
            then(errors[0] if errors else None)

    if not futures:
        then(None)
    for future in futures:
        future.add_done_callback(settled)
