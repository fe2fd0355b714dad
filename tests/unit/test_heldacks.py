"""Held acks: the futures a message's ack waits for, per worker thread, and when they settle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

from workers.broker import heldacks


def futures(count: int) -> list[Future[None]]:
    return [Future() for _ in range(count)]


def recorder() -> tuple[list[BaseException | None], Callable[[BaseException | None], None]]:
    calls: list[BaseException | None] = []
    return calls, calls.append


def test_when_settled_calls_back_once_with_none_after_every_future_succeeded_and_not_before() -> None:
    first, second, third = futures(3)
    first.set_result(None)  # already done when handed over
    calls, then = recorder()
    heldacks.when_settled([first, second, third], then)
    second.set_result(None)
    assert calls == []
    third.set_result(None)
    assert calls == [None]


def test_when_settled_passes_the_first_error_when_one_future_failed() -> None:
    ok, failing, last = futures(3)
    error = RuntimeError("not stored")
    calls, then = recorder()
    heldacks.when_settled([ok, failing, last], then)
    failing.set_exception(error)
    ok.set_result(None)
    assert calls == []  # still waits for the last one
    last.set_exception(RuntimeError("later"))
    assert calls == [error]


def test_when_settled_with_no_futures_calls_back_at_once() -> None:
    calls, then = recorder()
    heldacks.when_settled([], then)
    assert calls == [None]


def test_hold_then_take_returns_the_held_futures_once_and_only_on_the_holding_thread() -> None:
    first, second = futures(2)
    heldacks.hold([first])
    heldacks.hold([second])
    seen_elsewhere: list[list[Future[None]]] = []
    other = threading.Thread(target=lambda: seen_elsewhere.append(heldacks.take()))
    other.start()
    other.join()
    assert seen_elsewhere == [[]]
    assert heldacks.take() == [first, second]
    assert heldacks.take() == []


def test_pending_while_a_future_is_not_done_or_one_failed_and_not_once_all_succeeded() -> None:
    done, running = futures(2)
    done.set_result(None)
    assert heldacks.pending([done, running])
    running.set_result(None)
    assert not heldacks.pending([done, running])
    failed = Future[None]()
    failed.set_exception(RuntimeError("not stored"))
    assert heldacks.pending([done, failed])
    assert not heldacks.pending([])
