"""Sending deliveries to the delay queues, many to a message.

Every delivery that must wait (a retry, or a deferral while its endpoint is
busy, stalled or behind an open breaker) is published to a delay queue before
the message that carried it is acked. A confirmed publish per delivery would
cost RabbitMQ and the worker about as much CPU as a healthy delivery, so an
endpoint that hangs, and makes every delivery to it wait, would take the CPU
the healthy endpoints need. So deliveries go through a
:class:`~workers.broker.batches.Batcher`, which gathers those that arrive
within ``linger`` seconds and publishes each delay queue's share as one
message (``{"deliveries": [...]}``, for the retry actor), confirmed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import dramatiq
import pika
from dramatiq import Message

from workers.broker import batches
from workers.broker.topology import RETRY_ACTOR
from workers.errors import DelayNotStored

LINGER_SECONDS = 0.05  # short next to any delay (>= 1 s); long enough to gather a batch under load
MAX_DELIVERIES = 50  # a retries message stays a small unit of work (and of the backlog KEDA counts)
MAX_BYTES = 4 * 1024 * 1024  # far below RabbitMQ's message size limit, whatever the event size
CONNECTION_NAME = "hookline delay batcher"


def encoded_size(delivery: dict[str, Any]) -> int:
    """The bytes ``delivery`` takes in a message, as dramatiq's encoder writes it.

    Not its characters: JSON escapes each non-ASCII character (12 bytes for an
    emoji), so a batch counted in characters could be ten times its cap.
    """
    return len(dramatiq.get_encoder().encode(delivery))


def retry_message(retries_queue: str, deliveries: Sequence[dict[str, Any]]) -> bytes:
    """A message for the retry actor holding ``deliveries``, as the delay queue hands it on."""
    message: Message[Any] = Message(
        queue_name=retries_queue,
        actor_name=RETRY_ACTOR,
        args=(),
        kwargs={"deliveries": list(deliveries)},
        options={},
    )
    return message.encode()


class DelayBatcher(batches.Batcher[dict[str, Any]]):
    """Publishes deliveries to delay queues in batches, from one thread with its own connection."""

    def __init__(
        self,
        connect: Callable[[], pika.BlockingConnection],
        retries_queue: str,
        *,
        linger: float = LINGER_SECONDS,
        max_deliveries: int = MAX_DELIVERIES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        composer = batches.Composer(
            size=encoded_size, body=partial(retry_message, retries_queue), not_stored=DelayNotStored
        )
        super().__init__(
            connect,
            composer,
            name="delay-batcher",
            linger=linger,
            max_items=max_deliveries,
            max_bytes=max_bytes,
        )


def connector(url: str) -> Callable[[], pika.BlockingConnection]:
    """Opens the delay batcher's connection (see :func:`workers.broker.batches.connector`)."""
    return batches.connector(url, CONNECTION_NAME)
