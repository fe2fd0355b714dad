"""Heartbeats of the worker processes, which the parent's ``/healthz`` and ``/readyz`` read.

Under ``hookline worker`` each worker process runs a daemon thread that writes
``<PROMETHEUS_MULTIPROC_DIR>/heartbeats/<pid>.json`` every
:data:`INTERVAL_SECONDS`: its state and the time, on the system-wide monotonic
clock (shared by every process on the host, and immune to clock changes). A
dramatiq middleware (:mod:`workers.middleware.heartbeat`) tells it when the
worker has started consuming and when it is stopping. A process that hangs
hard (or dies) stops writing, and the parent sees its heartbeat grow stale.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from workers.vocabulary import ProcessState

INTERVAL_SECONDS = 2.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
SUBDIRECTORY = "heartbeats"


@dataclass(frozen=True)
class Beat:
    pid: int
    state: ProcessState
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
            beats.append(Beat(int(record["pid"]), ProcessState(record["state"]), float(record["at"])))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return beats


def forget(path: Path, pid: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        (path / f"{pid}.json").unlink()


class Heartbeat:
    """The worker-process side: a thread writing this process's state, as ``state()`` tells it."""

    def __init__(self, path: Path, state: Callable[[], ProcessState]) -> None:
        self.path = path
        self.pid = os.getpid()
        self.state = state
        self._stop = threading.Event()

    def start(self) -> None:
        self.write()
        threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True).start()

    def write(self) -> None:
        record = {"pid": self.pid, "state": self.state(), "at": time.monotonic()}
        temporary = self.path / f".{self.pid}.tmp"
        temporary.write_text(json.dumps(record))
        temporary.replace(self.path / f"{self.pid}.json")  # atomic: readers never see half a file

    def stop(self) -> None:
        self._stop.set()

    def _beat_forever(self) -> None:
        while not self._stop.wait(INTERVAL_SECONDS):
            try:
                self.write()
            except OSError:
                continue  # a full disk must not kill the worker; the parent sees the heartbeat go stale
