"""Heartbeats of the worker processes, which the parent's ``/healthz`` and ``/readyz`` read.

Under ``hookline worker`` each worker process runs a daemon thread that writes
``<PROMETHEUS_MULTIPROC_DIR>/heartbeats/<pid>.json`` every
:data:`INTERVAL_SECONDS`: its state and the time, on the system-wide monotonic
clock (shared by every process on the host, and immune to clock changes). A
dramatiq middleware tells the thread when the worker has started consuming and
when it is stopping. A process that hangs hard (or dies) stops writing, and the
parent sees its heartbeat grow stale.

The directory lives inside the multiprocess directory because both are created
fresh per run and both vanish with it; prometheus_client reads only the
``*.db`` files at the top of that directory, so a subdirectory is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dramatiq.broker import Broker
from dramatiq.middleware import Middleware

INTERVAL_SECONDS = 2.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SUBDIRECTORY = "heartbeats"

STARTING = "starting"  # importing, connecting: not consuming yet
CONSUMING = "consuming"  # the dramatiq worker runs and all its threads are alive
STALLED = "stalled"  # a worker or consumer thread died
STOPPING = "stopping"  # SIGTERM received: finishing what it holds


@dataclass(frozen=True)
class Beat:
    pid: int
    state: str
    at: float  # time.monotonic() of the process that wrote it

    def age(self, now: float) -> float:
        return max(now - self.at, 0.0)


def directory() -> Path | None:
    """Where this run's heartbeats go, or None when not run by ``hookline worker`` with metrics on."""
    root = os.environ.get(MULTIPROC_ENV)
    if not root:
        return None
    path = Path(root) / SUBDIRECTORY
    return path if path.is_dir() else None


def read_all(path: Path) -> list[Beat]:
    """Every heartbeat in ``path``; a file caught half-written or gone meanwhile is skipped."""
    beats = []
    for file in path.glob("*.json"):
        try:
            record = json.loads(file.read_text())
            beats.append(Beat(pid=int(record["pid"]), state=str(record["state"]), at=float(record["at"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return beats


def forget(path: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (path / f"{pid}.json").unlink()


class Heartbeat(Middleware):
    """The worker-process side: a thread writing this process's state, and the hooks that set it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pid = os.getpid()
        self.worker: Any = None
        self.stopping = False
        self._stop = threading.Event()

    def start(self) -> None:
        self.write()
        threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True).start()

    def state(self) -> str:
        if self.stopping:
            return STOPPING
        if self.worker is None:
            return STARTING
        return CONSUMING if _threads_alive(self.worker) else STALLED

    def write(self) -> None:
        record = {"pid": self.pid, "state": self.state(), "at": time.monotonic()}
        temporary = self.path / f".{self.pid}.tmp"
        temporary.write_text(json.dumps(record))
        temporary.replace(self.path / f"{self.pid}.json")  # atomic: readers never see half a file

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook
        self.worker = worker
        self.write()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook
        self.stopping = True
        self.write()

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:  # noqa: ARG002 - dramatiq's hook
        self._stop.set()
        _mark_dead(self.pid)

    def _beat_forever(self) -> None:
        while not self._stop.wait(INTERVAL_SECONDS):
            try:
                self.write()
            except OSError:
                continue  # a full disk must not kill the worker; the parent sees the heartbeat go stale


def _threads_alive(worker: Any) -> bool:
    threads = [*worker.workers, *worker.consumers.values()]
    return bool(threads) and all(thread.is_alive() for thread in threads)


def _mark_dead(pid: int) -> None:
    # Drop this process's live gauges (in flight, breakers open) from the sums at once.
    from prometheus_client import multiprocess  # noqa: PLC0415 - only worker processes under `hookline worker`

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call] # unannotated in prometheus_client


def attach(broker: Broker) -> Heartbeat | None:
    """Start heartbeats in this worker process if ``hookline worker`` asked for them."""
    path = directory()
    if path is None:
        return None
    heartbeat = Heartbeat(path)
    broker.add_middleware(heartbeat)
    heartbeat.start()
    return heartbeat
