"""Park a message whose actor raised in ``<queue>.XQ``, with the reason, instead of acking it.

hookline runs without dramatiq's Retries middleware (its delays wait in worker
memory; see docs/architecture.md, "Where retries wait"). Without it, dramatiq
*acks* a message whose actor raised, which would lose it. This middleware
publishes a copy to ``<queue>.XQ`` that says why (the exception's type and
where it was raised), the queue it came from and, for an event, its routing
key, so ``hookline crashed`` can show and replay it; the original is acked
once the broker confirmed the copy. If the copy cannot be stored, the message
is marked failed instead, so dramatiq nacks it and RabbitMQ dead-letters it to
the same ``.XQ`` (without the reason): it is never lost either way.

dramatiq's own line about the crash prints the message with its arguments, an
event's data included: that line is dropped (:mod:`workers.observability.logs`)
and this one, ``message_crashed``, says which message, which actor, and where
the exception came from, without the payload or the exception's text (which
may quote it).

Every crash is counted once: when its copy is parked, or in ``after_nack``,
which dramatiq's worker emits for the messages it nacks and the held-ack
consumer for those it rejects once a delay batch failed (see
:mod:`workers.broker.rabbitmq`).
"""

from __future__ import annotations

import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pika
from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware

from workers.broker.rabbitmq import HooklineBroker
from workers.broker.topology import RawEvent
from workers.errors import HooklineError
from workers.observability import metrics
from workers.observability.logs import get_logger
from workers.pipeline.deadletters import (
    ORIGIN_QUEUE_HEADER,
    PARKED_AT_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
)
from workers.vocabulary import Rejection

log = get_logger(component="worker")


class FailOnError(Middleware):
    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,  # noqa: ARG002 - dramatiq's hook signature
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            return
        raised_at = _raised_at(exception)
        parked = isinstance(broker, HooklineBroker) and _park(broker, message, exception, raised_at)
        if parked:
            metrics.dead_lettered(Rejection.CRASHED)  # acked, so after_nack will not count it
        else:
            message.fail()  # nacked: RabbitMQ dead-letters it to .XQ itself
        log.error(
            "message_crashed",
            message_id=message.message_id,
            actor=message.actor_name,
            queue=message.queue_name,
            error=type(exception).__name__,
            raised_at=raised_at,
            parked_with_reason=parked,
        )

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:  # noqa: ARG002 - dramatiq's hook
        metrics.dead_lettered(Rejection.CRASHED)


def _park(
    broker: HooklineBroker, message: MessageProxy, exception: BaseException, raised_at: str | None
) -> bool:
    """Store a copy of ``message`` in its .XQ, saying why; False if the broker did not confirm it."""
    headers = {
        REASON_HEADER: f"crashed: {type(exception).__name__}" + (f" at {raised_at}" if raised_at else ""),
        ORIGIN_QUEUE_HEADER: message.queue_name,
        PARKED_AT_HEADER: datetime.now(UTC).isoformat(),
    }
    raw = message.args[0] if message.args and isinstance(message.args[0], RawEvent) else None
    if raw is not None:  # an event: parked as it was published, so that replay publishes it again
        headers[ROUTING_KEY_HEADER] = raw.routing_key
    body = raw.body if raw is not None else message.encode()
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent, headers=headers)
    try:
        broker.publish_confirmed(broker.topology.crashed_queue(message.queue_name), body, properties)
    except (HooklineError, pika.exceptions.AMQPError) as exc:
        log.warning("crash_not_parked", message_id=message.message_id, error=type(exc).__name__)
        return False
    return True


def _raised_at(exception: BaseException) -> str | None:
    """``file:line in function`` of the frame that raised: where to look, without the message."""
    frames = traceback.extract_tb(exception.__traceback__)
    if not frames:
        return None
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"
