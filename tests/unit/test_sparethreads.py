"""Spare threads are taken only when idle; otherwise the caller does the work."""

from __future__ import annotations

import threading
import time

from workers.pipeline.sparethreads import SpareThreads


def test_work_is_offered_to_an_idle_spare_thread() -> None:
    spare = SpareThreads(1, "test")
    future = spare.offer(threading.current_thread)
    assert future is not None
    assert future.result(timeout=5) is not threading.current_thread()


def test_no_spare_thread_is_waited_for_when_all_are_busy() -> None:
    spare = SpareThreads(1, "test")
    release = threading.Event()
    busy = spare.offer(release.wait, 5)
    assert busy is not None
    assert spare.offer(lambda: None) is None
    release.set()
    busy.result(timeout=5)


def test_a_spare_thread_is_offered_again_once_it_is_done() -> None:
    spare = SpareThreads(1, "test")
    first = spare.offer(lambda: 1)
    assert first is not None
    assert first.result(timeout=5) == 1
    deadline = time.monotonic() + 5
    second = None
    while second is None and time.monotonic() < deadline:  # freed by a done-callback, just after the result
        second = spare.offer(lambda: 2)
    assert second is not None
    assert second.result(timeout=5) == 2
