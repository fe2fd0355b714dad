"""Tell this process's heartbeat what its dramatiq worker is doing.

The heartbeat itself is :mod:`workers.observability.heartbeat`; this is the dramatiq side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

from workers.observability import heartbeat, metrics
from workers.vocabulary import ProcessState


class Heartbeats(Middleware):
    """Starting until the worker booted, consuming while its threads live, stopping after SIGTERM."""

    def __init__(self, path: Path) -> None:
        self.worker: Any = None
        self.stopping = False
        self.beat = heartbeat.Heartbeat(path, self.state)

    def state(self) -> ProcessState:
        if self.stopping:
            return ProcessState.STOPPING
        if self.worker is None:
            return ProcessState.STARTING
        return ProcessState.CONSUMING if _threads_alive(self.worker) else ProcessState.THREAD_DIED

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook
        self.worker = worker
        self.beat.write()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook
        self.stopping = True
        self.beat.write()

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook
        self.beat.stop()
        metrics.mark_process_dead(self.beat.pid)


def _threads_alive(worker: Any) -> bool:
    threads = [*worker.workers, *worker.consumers.values()]
    return bool(threads) and all(thread.is_alive() for thread in threads)


def attach(broker: Broker) -> Heartbeats | None:
    """Start heartbeats in this worker process if ``hookline worker`` asked for them."""
    path = heartbeat.directory()
    if path is None:
        return None
    heartbeats = Heartbeats(path)
    broker.add_middleware(heartbeats)
    heartbeats.beat.start()
    return heartbeats
