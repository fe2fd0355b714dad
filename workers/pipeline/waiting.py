"""Waiting in RabbitMQ: which delay queue a delivery takes next on its way to ``not_before``.

Delay queues hold 1, 2, 4, … 65536 seconds. Each hop takes the longest queue
that does not overshoot what is left; under a second left, one more 1 s hop.
So a retry never fires early, fires at most about a second late, and a wait
of any length takes at most ~17 hops plus one per 18 h.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Protocol

from workers.broker.topology import DELAY_TIERS, Topology
from workers.pipeline.delivery import Delivery

# Less than this left counts as due: a hop could only make it later.
DUE_SLACK_SECONDS = 0.05


class DelaySender(Protocol):
    """What stores deliveries in delay queues: :class:`workers.broker.delaybatch.DelayBatcher`."""

    def send(self, queue: str, delivery: dict[str, Any]) -> Future[None]: ...


def is_due(not_before: float | None, now: float) -> bool:
    return not_before is None or not_before - now <= DUE_SLACK_SECONDS


def next_hop(remaining: float) -> int:
    """The delay queue (in seconds) to wait in next, for ``remaining`` seconds still to wait."""
    fitting = [tier for tier in DELAY_TIERS if tier <= remaining]
    return fitting[-1] if fitting else DELAY_TIERS[0]


def wait_in_broker(sender: DelaySender, topology: Topology, delivery: Delivery, now: float) -> Future[None]:
    """Send ``delivery`` to the delay queue for its next hop; the future is done once it is stored.

    It goes in a batch addressed to the retry actor (workers/delaybatch.py), so
    that when the delay queue dead-letters the batch into the retries queue it
    is consumed as is. The caller's message must not be acked before the future
    succeeded: hold it (workers/heldacks.py).
    """
    assert delivery.not_before is not None  # noqa: S101 - callers schedule only deliveries with a due time
    hop = next_hop(delivery.not_before - now)
    return sender.send(topology.delay_queue(hop), delivery.to_message())
