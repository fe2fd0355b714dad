"""A few spare threads per process, taken only when one is idle.

The fan-out makes the first attempts of an event with several subscriptions
side by side, so that one slow endpoint does not hold up the event's other
deliveries. Threads for that are kept few: each extra thread contending for
the GIL makes every delivery in the process cost more CPU, healthy ones
included, so a handful buys the overlap and more only add hand-offs. And a
spare thread is never waited for: when none is idle (every one busy, perhaps
on hanging requests), the caller does the work itself, so the fan-out always
makes progress.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class SpareThreads:
    def __init__(self, count: int, name: str) -> None:
        self._idle = threading.BoundedSemaphore(count)
        self._pool = ThreadPoolExecutor(count, thread_name_prefix=name)

    def offer(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Future[T] | None:
        """Run ``fn`` on an idle spare thread and return its future; None if no thread is idle."""
        if not self._idle.acquire(blocking=False):
            return None
        try:
            future = self._pool.submit(fn, *args, **kwargs)
        except BaseException:
            self._idle.release()
            raise
        future.add_done_callback(lambda _: self._idle.release())
        return future
