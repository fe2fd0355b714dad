"""Reading a parking queue without taking from it: the channel, the count, the scan.

A queue cannot be read without taking messages off it, so every operation
consumes with manual acks and keeps what it reads unacked. Only the messages
an operation selects are acked; everything else returns to the queue, in its
place on a classic queue (a quorum queue puts returns back in the order it processes them),
when the channel closes. A scan reads at most as many messages as the
queue held when it began (a passive declare, which also never creates a
queue), so messages parked meanwhile cannot keep it running.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from producer.settings import redacted_url
from workers.broker.nodes import Nodes
from workers.errors import DeadLetterError, describe_cause

# on_progress(done, total): messages read so far, and how many the queue held at the start.
Progress = Callable[[int, int], None]

# How long a read waits for the next message before deciding that the queue
# holds fewer than it counted (some expired, or another client holds them).
SCAN_IDLE_SECONDS = 3.0
# prefetch-count is a 16-bit field; 0 means no limit.
MAX_PREFETCH = 65535
NOT_FOUND = 404  # the reply code of a passive declare of a queue that does not exist
# How long a lookup waits, when another reader held the queue, before looking once more.
RELOOK_SECONDS = 1.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Read:
    """One message as a scan read it; acking ``tag`` on the scan's channel takes it off the queue."""

    tag: int
    properties: pika.BasicProperties
    body: bytes


@contextlib.contextmanager
def channel(amqp_url: str, what: str) -> Iterator[BlockingChannel]:
    """A channel on its own connection; closing it returns every unacked message to its queue.

    Broker errors become one-line DeadLetterErrors that say where, and ``what`` was being read.
    """
    where = redacted_url(amqp_url)
    try:
        connection = Nodes(amqp_url).connect()  # the first node that answers
    except pika.exceptions.AMQPError as exc:
        raise DeadLetterError(f"cannot connect to {where}: {describe_cause(exc)}") from exc
    try:
        yield connection.channel()
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == NOT_FOUND:
            raise DeadLetterError(
                f"{describe_cause(exc)} on {where}: check HOOKLINE_QUEUE_PREFIX, or run `hookline setup`"
            ) from exc
        raise DeadLetterError(f"{what} on {where}: {describe_cause(exc)}") from exc
    except pika.exceptions.AMQPError as exc:
        raise DeadLetterError(f"{what} on {where}: {describe_cause(exc)}") from exc
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):
            # A broken connection is already closed; the broker requeues either way.
            if connection.is_open:
                connection.close()


@dataclass(frozen=True, slots=True)
class Depth:
    """What a passive declare says of a queue: messages ready, and readers (consumers) attached.

    A quorum queue counts only ready messages, and takes back what a reader held
    when that reader's consumer goes, in the same step: while ``readers`` is 0,
    nothing is out being returned, so ``ready`` is everything the queue holds.
    """

    ready: int
    readers: int


def depth(channel: BlockingChannel, queue: str) -> Depth:
    """``queue``'s depth now; a missing queue closes the channel with 404."""
    method = channel.queue_declare(queue, passive=True).method
    return Depth(method.message_count, method.consumer_count)


def look_twice(look: Callable[[], tuple[T | None, bool]]) -> T | None:
    """What ``look()`` found, looking once more a moment later if it found nothing while another
    reader held some of the queue (``look`` returns what it found, and whether others were reading).

    What another reader holds (one that is closing, say: a list just before) is not counted until
    it is back; with no other reader attached, nothing is out, and one look is the answer.
    """
    found, others_reading = look()
    if found is None and others_reading:
        time.sleep(RELOOK_SECONDS)
        found, _ = look()
    return found


def message_count(channel: BlockingChannel, queue: str) -> int:
    """How many messages ``queue`` holds ready now; a missing queue closes the channel with 404."""
    return depth(channel, queue).ready


def scan(
    channel: BlockingChannel, queue: str, total: int, on_progress: Progress | None = None
) -> Iterator[Read]:
    """Up to ``total`` messages of ``queue``, each once; none is acked here."""
    if total == 0:
        return
    # Unacked messages fill the prefetch window and everything read stays unacked,
    # so the window must hold the whole count or the broker stops sending half way.
    channel.basic_qos(prefetch_count=total if total <= MAX_PREFETCH else 0)
    deliveries = channel.consume(queue, inactivity_timeout=SCAN_IDLE_SECONDS)
    for done, (method, properties, body) in enumerate(deliveries, start=1):
        if method is None or properties is None or body is None:
            break  # fewer than counted: expired, or held by another client
        # A Basic.Deliver always carries a tag; the assert narrows its type for mypy.
        assert method.delivery_tag is not None  # noqa: S101 - see above
        yield Read(method.delivery_tag, properties, body)
        if on_progress is not None:
            on_progress(done, total)
        if done >= total:
            break
