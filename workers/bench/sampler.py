"""Peak resident memory (RSS) and CPU time of a set of processes, sampled in a background thread.

CPU time is what each process used between its first and its last sample, so
a worker's start-up is not counted, and the figure does not depend on what
else the machine was doing: CPU per delivery is the bench's least noisy figure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import psutil

INTERVAL = 0.5  # seconds: often enough to catch a peak that lasts, cheap enough to go unnoticed


@dataclass
class Usage:
    peak_rss: int  # bytes
    first_cpu: float  # seconds of CPU (user + system) at the first sample
    last_cpu: float

    @property
    def cpu_seconds(self) -> float:
        return self.last_cpu - self.first_cpu


class ProcessSampler:
    """Samples the processes ``find`` returns every ``interval``; :meth:`stop` gives each one's usage.

    ``find`` is asked again at every sample, so processes that start late
    (or are replaced) are measured too.
    """

    def __init__(self, find: Callable[[], list[psutil.Process]], interval: float = INTERVAL) -> None:
        self._find = find
        self._interval = interval
        self._usage: dict[int, Usage] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-sampler", daemon=True)

    def __enter__(self) -> Self:
        self.sample()  # the CPU baseline, before the caller starts the load
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> dict[int, Usage]:
        """Stop sampling, after one last sample; the usage of every process seen, by pid."""
        if not self._stopping.is_set():
            self._stopping.set()
            self._thread.join()
            self.sample()
        return dict(sorted(self._usage.items()))

    def sample(self) -> None:
        for process in self._find():
            try:
                with process.oneshot():
                    rss, times = process.memory_info().rss, process.cpu_times()
            except psutil.NoSuchProcess:
                continue  # it exited between being found and being measured
            cpu = times.user + times.system
            usage = self._usage.setdefault(process.pid, Usage(rss, cpu, cpu))
            usage.peak_rss, usage.last_cpu = max(usage.peak_rss, rss), cpu

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.sample()
