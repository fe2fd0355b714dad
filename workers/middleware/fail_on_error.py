"""Dead-letter a message whose actor raised, instead of acking it.

hookline runs without dramatiq's Retries middleware (its delays wait in worker
memory; see docs/architecture.md, "Where retries wait"). Without it, dramatiq
*acks* a message whose actor raised, which would lose it. This middleware
marks it failed, so dramatiq nacks it and RabbitMQ dead-letters it to
``<queue>.XQ``.

dramatiq's own line about the crash prints the message with its arguments, an
event's data included: that line is dropped (:mod:`workers.observability.logs`)
and this one, ``message_crashed``, says which message, which actor, and where
the exception came from, without the payload or the exception's text (which
may quote it).

Every rejection is counted once, in ``after_nack``: dramatiq's worker emits it
for the messages it nacks, and the held-ack consumer for those it rejects once
a delay batch failed (see :mod:`workers.broker.rabbitmq`).
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware

from workers.observability import metrics
from workers.observability.logs import get_logger
from workers.vocabulary import Rejection

log = get_logger(component="worker")


class FailOnError(Middleware):
    def after_process_message(
        self,
        broker: Broker,  # noqa: ARG002 - dramatiq's hook signature
        message: MessageProxy,
        *,
        result: Any = None,  # noqa: ARG002 - dramatiq's hook signature
        exception: BaseException | None = None,
    ) -> None:
        if exception is not None:
            message.fail()
            log.error(
                "message_crashed",
                message_id=message.message_id,
                actor=message.actor_name,
                queue=message.queue_name,
                error=type(exception).__name__,
                raised_at=_raised_at(exception),
            )

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:  # noqa: ARG002 - dramatiq's hook
        metrics.dead_lettered(Rejection.CRASHED)


def _raised_at(exception: BaseException) -> str | None:
    """``file:line in function`` of the frame that raised: where to look, without the message."""
    frames = traceback.extract_tb(exception.__traceback__)
    if not frames:
        return None
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} in {last.name}"
