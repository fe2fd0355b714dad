"""Dead-letter a message whose actor raised, instead of acking it.

hookline runs without dramatiq's Retries middleware (its delays wait in worker
memory; see the README). Without it, dramatiq *acks* a message whose actor
raised, which would lose it. This middleware marks it failed, so dramatiq
nacks it and RabbitMQ dead-letters it to ``<queue>.XQ``.

Every rejection is counted once, in ``after_nack``: dramatiq's worker emits it
for the messages it nacks, and the held-ack consumer for those it rejects once
a delay batch failed (see :mod:`workers.broker.rabbitmq`).
"""

from __future__ import annotations

from typing import Any

from dramatiq.broker import Broker, MessageProxy
from dramatiq.middleware import Middleware

from workers.observability import metrics
from workers.vocabulary import Rejection


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

    def after_nack(self, broker: Broker, message: MessageProxy) -> None:  # noqa: ARG002 - dramatiq's hook
        metrics.dead_lettered(Rejection.CRASHED)
