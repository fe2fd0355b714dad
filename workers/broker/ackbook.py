"""Acks sent many at a time: one ``multiple`` ack for every settled message below the oldest open one.

A consumer used to send one ack frame per message, each scheduled on its
connection's thread on its own (a wake-up of the I/O loop, a frame, a flush):
about a tenth of a worker's CPU per delivery, and as much again in RabbitMQ.
Messages settle in bursts (a batch of delivery-log records is confirmed for
many messages at once), so the book collects what settled and the
connection's thread sends it in one go (:meth:`AckBook.take`): rejections
first, each on its own, then one ``basic_ack(tag, multiple=True)`` covering
every acked tag below the oldest message still open, then the acked tags
above it one by one. An ack never waits for a slow message, and a ``multiple``
ack never covers a message that is still being processed or one that is to be
rejected: a rejection is booked and its tag leaves the open set under the same
lock, so :meth:`take` sees both or neither.

Delivery tags grow in the order RabbitMQ delivered the messages on a channel,
and the consumer yields them in that order, so a tag below the lowest open one
was yielded and settled: acked or rejected now or before.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Frames:
    """What to send for the messages settled since the last :meth:`AckBook.take`."""

    rejected: list[int]
    acked_up_to: int | None  # one ack with multiple=True; None when no acked tag is below every open one
    acked: list[int]  # acked tags above an open one, acked one by one

    def in_order(self) -> list[tuple[bool, int, bool]]:
        """``(ack, tag, multiple)`` for each frame, rejections first."""
        frames = [(False, tag, False) for tag in self.rejected]
        if self.acked_up_to is not None:
            frames.append((True, self.acked_up_to, True))
        frames.extend((True, tag, False) for tag in self.acked)
        return frames


class AckBook:
    """A channel's open messages (delivered, not settled), and those settled since the last take.

    ``open_tags`` is the consumer's own set of delivered tags (dramatiq's
    ``known_tags``): the consumer's thread adds to it, :meth:`settle` removes.
    """

    def __init__(self, open_tags: set[int]) -> None:
        self.open_tags = open_tags
        self._lock = threading.Lock()
        self._acked: list[int] = []
        self._rejected: list[int] = []
        self._scheduled = False

    def settle(self, tag: int, *, ack: bool) -> bool:
        """Book ``tag`` as acked or rejected. True if the caller must schedule a :meth:`take`.

        Raises KeyError for a tag this channel did not deliver or that was settled already.
        """
        with self._lock:
            self.open_tags.remove(tag)
            (self._acked if ack else self._rejected).append(tag)
            if self._scheduled:
                return False  # a take is on its way: it sends this one too
            self._scheduled = True
            return True

    def take(self) -> Frames:
        """What to send now, on the connection's thread; the book starts over."""
        with self._lock:
            acked, rejected = sorted(self._acked), self._rejected
            self._acked, self._rejected, self._scheduled = [], [], False
            oldest_open = min(self.open_tags, default=None)
        below = len(acked) if oldest_open is None else bisect_left(acked, oldest_open)
        return Frames(rejected, acked[below - 1] if below else None, acked[below:])
