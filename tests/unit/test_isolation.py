"""Per-endpoint admission: an in-flight cap and a circuit breaker with a half-open probe."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from workers.errors import ClientErrorStatus, DeliveryTimeout, RetryableHttpStatus
from workers.outbound import isolation
from workers.outbound.isolation import FIRST_ANSWER_WAIT, Endpoints, endpoint_of, is_endpoint_trouble
from workers.vocabulary import BreakerChange, Refusal

SLOW = "https://slow.example:443"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def endpoints(clock: Clock, max_in_flight: int = 2) -> Endpoints:
    return Endpoints(max_in_flight=max_in_flight, failure_threshold=3, cooldown=30.0, clock=clock)


def answering_at_its_cap(failure_threshold: int = 5) -> Endpoints:
    """A guard whose endpoint answered once and has its one slot taken: the next enter() waits."""
    guard = Endpoints(max_in_flight=1, failure_threshold=failure_threshold, cooldown=30)
    guard.enter(SLOW)
    guard.leave(SLOW, None)
    assert guard.enter(SLOW) is None
    return guard


def fail(guard: Endpoints, times: int) -> list[str | None]:
    opened = []
    for _ in range(times):
        assert guard.enter(SLOW) is None
        opened.append(guard.leave(SLOW, DeliveryTimeout("timed out")))
    return opened


def test_an_endpoint_at_its_in_flight_cap_refuses_more_and_others_are_not_affected() -> None:
    guard = endpoints(Clock())
    guard.enter(SLOW)
    guard.leave(SLOW, None)  # it answered: the whole cap (2) is open to it
    assert guard.enter(SLOW) is None
    assert guard.enter(SLOW) is None
    assert guard.enter(SLOW) == Refusal.ENDPOINT_STALLED  # and nothing came back since
    assert guard.enter("https://healthy.example:443") is None
    guard.leave(SLOW, None)
    assert guard.enter(SLOW) is None
    # It answers, but no slot freed within the wait.
    assert guard.enter(SLOW, wait=0.01) == Refusal.ENDPOINT_BUSY


def test_consecutive_failures_open_the_breaker_and_requests_are_refused_without_a_slot() -> None:
    guard = endpoints(Clock())
    assert fail(guard, 3) == [None, None, BreakerChange.OPENED]
    assert guard.enter(SLOW) == Refusal.CIRCUIT_OPEN
    assert guard.open_breakers() == 1


def test_a_success_between_failures_keeps_the_breaker_closed() -> None:
    guard = endpoints(Clock())
    fail(guard, 2)
    guard.enter(SLOW)
    guard.leave(SLOW, None)
    assert fail(guard, 2) == [None, None]


def test_after_the_cooldown_one_probe_goes_through_and_its_success_closes_the_breaker() -> None:
    clock = Clock()
    guard = endpoints(clock)
    fail(guard, 3)
    clock.now += 30.0
    assert guard.enter(SLOW) is None  # the probe
    assert guard.enter(SLOW) == Refusal.CIRCUIT_OPEN  # everyone else waits for it
    assert guard.open_breakers() == 1  # half-open still counts: it is not closed
    assert guard.leave(SLOW, None) == BreakerChange.CLOSED
    assert guard.enter(SLOW) is None
    assert guard.open_breakers() == 0


def test_a_failed_probe_opens_the_breaker_for_twice_as_long_up_to_ten_cooldowns() -> None:
    clock = Clock()
    guard = endpoints(clock)
    fail(guard, 3)
    for expected in (60.0, 120.0, 240.0, 300.0, 300.0):
        clock.now += 1000.0
        assert fail(guard, 1) == [BreakerChange.OPENED]
        clock.now += expected - 0.1
        assert guard.enter(SLOW) == Refusal.CIRCUIT_OPEN
        clock.now += 0.1


def test_only_failures_that_say_the_endpoint_is_in_trouble_count() -> None:
    assert is_endpoint_trouble(DeliveryTimeout("t"))
    assert is_endpoint_trouble(RetryableHttpStatus("HTTP 503", status=503))
    assert is_endpoint_trouble(RetryableHttpStatus("HTTP 429", status=429))
    assert not is_endpoint_trouble(ClientErrorStatus("HTTP 404", status=404))


def test_endpoints_are_origins_with_explicit_ports() -> None:
    assert endpoint_of("https://a.example/hooks?x=1") == "https://a.example:443"
    assert endpoint_of("http://a.example:8080/x") == "http://a.example:8080"


def test_a_delivery_waits_briefly_for_a_slot_at_an_endpoint_that_is_answering() -> None:
    guard = Endpoints(max_in_flight=1, failure_threshold=5, cooldown=30)
    assert guard.enter(SLOW) is None
    guard.leave(SLOW, None)  # it answered just now
    assert guard.enter(SLOW) is None
    timer = threading.Timer(0.05, guard.leave, args=(SLOW, None))
    timer.start()
    assert guard.enter(SLOW, wait=5.0) is None
    timer.join()


def test_an_endpoint_is_stalled_at_once_when_nothing_came_back_from_it_lately() -> None:
    clock = Clock()
    guard = Endpoints(max_in_flight=1, failure_threshold=5, cooldown=30, clock=clock)
    assert guard.enter(SLOW) is None  # hangs: never leaves
    clock.now += 10.0
    started = time.monotonic()
    assert guard.enter(SLOW, wait=5.0) == Refusal.ENDPOINT_STALLED
    assert time.monotonic() - started < 1


def test_a_delivery_is_busy_once_no_slot_frees_within_its_wait() -> None:
    guard = Endpoints(max_in_flight=1, failure_threshold=5, cooldown=30)
    assert guard.enter(SLOW) is None
    guard.leave(SLOW, None)
    assert guard.enter(SLOW) is None
    started = time.monotonic()
    assert guard.enter(SLOW, wait=0.1) == Refusal.ENDPOINT_BUSY
    assert time.monotonic() - started >= 0.1


def test_an_open_breaker_says_when_it_lets_a_probe_through() -> None:
    clock = Clock()
    guard = endpoints(clock)
    assert guard.reopens_in(SLOW) == 0.0
    fail(guard, 3)
    clock.now += 10.0
    assert guard.reopens_in(SLOW) == 20.0


def test_a_new_endpoint_gets_one_request_at_a_time_until_one_went_well() -> None:
    clock = Clock()
    guard = endpoints(clock, max_in_flight=4)
    assert guard.enter(SLOW) is None
    clock.now += 10.0
    # A new endpoint that hangs holds one thread.
    assert guard.enter(SLOW, wait=1.0) == Refusal.ENDPOINT_STALLED
    guard.leave(SLOW, None)
    assert [guard.enter(SLOW) for _ in range(5)] == [None, None, None, None, Refusal.ENDPOINT_STALLED]


def test_an_endpoint_that_timed_out_is_back_to_one_request_at_a_time() -> None:
    guard = endpoints(Clock(), max_in_flight=4)
    guard.enter(SLOW)
    guard.leave(SLOW, None)
    guard.enter(SLOW)
    guard.leave(SLOW, DeliveryTimeout("timed out"))
    assert guard.enter(SLOW) is None
    assert guard.enter(SLOW) == Refusal.ENDPOINT_STALLED


def test_no_thread_waits_on_an_endpoint_whose_last_request_timed_out() -> None:
    guard = endpoints(Clock(), max_in_flight=4)
    guard.enter(SLOW)
    guard.leave(SLOW, DeliveryTimeout("timed out"))
    assert guard.enter(SLOW) is None  # the next request, just started
    started = time.monotonic()
    assert guard.enter(SLOW, wait=5.0) == Refusal.ENDPOINT_BUSY
    assert time.monotonic() - started < 1


def test_a_new_endpoint_is_waited_for_so_its_first_answer_opens_the_cap_to_the_waiters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "FIRST_ANSWER_WAIT", 5.0)  # no slow machine makes a waiter give up
    guard = Endpoints(max_in_flight=4, failure_threshold=5, cooldown=30)
    assert guard.enter(SLOW) is None  # its first request
    timer = threading.Timer(0.05, guard.leave, args=(SLOW, None))
    timer.start()
    with ThreadPoolExecutor(3) as pool:
        waited = list(pool.map(lambda _: guard.enter(SLOW, wait=5.0), range(3)))
    timer.join()
    assert waited == [None, None, None]


def test_a_new_endpoint_that_does_not_answer_is_waited_for_only_briefly() -> None:
    guard = Endpoints(max_in_flight=4, failure_threshold=5, cooldown=30)
    assert guard.enter(SLOW) is None  # its first request, which hangs
    started = time.monotonic()
    assert guard.enter(SLOW, wait=5.0) == Refusal.ENDPOINT_BUSY
    assert time.monotonic() - started < FIRST_ANSWER_WAIT + 0.5


def test_once_a_new_endpoints_first_answer_is_overdue_no_thread_waits_for_it() -> None:
    clock = Clock()
    guard = endpoints(clock, max_in_flight=4)
    assert guard.enter(SLOW) is None
    clock.now += FIRST_ANSWER_WAIT
    started = time.monotonic()
    assert guard.enter(SLOW, wait=5.0) == Refusal.ENDPOINT_BUSY
    assert time.monotonic() - started < 0.1


def test_no_more_threads_than_the_cap_wait_for_a_new_endpoints_first_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(isolation, "FIRST_ANSWER_WAIT", 5.0)  # no slow machine makes a waiter give up
    guard = Endpoints(max_in_flight=2, failure_threshold=5, cooldown=30)
    assert guard.enter(SLOW) is None  # its first request: the cap is 1 until it answers
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(guard.enter, SLOW, 5.0) for _ in range(2)]
        time.sleep(0.2)  # both are waiting by now
        started = time.monotonic()
        assert guard.enter(SLOW, wait=5.0) == Refusal.ENDPOINT_BUSY  # a third is refused at once
        assert time.monotonic() - started < 0.1
        guard.leave(SLOW, None)  # it answered: the cap is 2, both waiters go
        assert [future.result() for future in waiting] == [None, None]


def test_any_number_of_threads_wait_for_an_endpoint_that_answers() -> None:
    guard = answering_at_its_cap()
    with ThreadPoolExecutor(4) as pool:
        waiting = [pool.submit(guard.enter, SLOW, 5.0) for _ in range(4)]
        time.sleep(0.2)  # all four are waiting by now; if not, they only arrive later
        for released in range(1, 5):
            guard.leave(SLOW, None)  # one slot at a time: each goes to one waiter
            while sum(future.done() for future in waiting) < released:
                time.sleep(0.01)
        assert [future.result() for future in waiting] == [None] * 4


def test_an_endpoint_failing_fast_keeps_its_whole_cap() -> None:
    guard = endpoints(Clock(), max_in_flight=4)
    guard.enter(SLOW)
    guard.leave(SLOW, RetryableHttpStatus("HTTP 503", status=503))
    assert [guard.enter(SLOW) for _ in range(4)] == [None, None, None, None]


def test_waiters_are_refused_when_the_request_they_waited_for_opens_the_breaker() -> None:
    guard = answering_at_its_cap(failure_threshold=1)
    with ThreadPoolExecutor(2) as pool:
        waiting = [pool.submit(guard.enter, SLOW, 5.0) for _ in range(2)]
        time.sleep(0.2)  # both are waiting by now
        assert guard.leave(SLOW, DeliveryTimeout("timed out")) == BreakerChange.OPENED
        assert [future.result() for future in waiting] == [Refusal.CIRCUIT_OPEN] * 2


class CountingCondition(threading.Condition):
    wake_ups = 0

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        CountingCondition.wake_ups += woken
        return woken


def test_a_finished_request_wakes_one_waiter_not_every_one() -> None:
    # Each wake-up costs a thread a turn at the GIL: waking every waiter per request made deliveries
    # dearer the more threads waited for a busy endpoint.
    guard = answering_at_its_cap()
    state = guard._endpoints[SLOW]  # counts the wake-ups of this endpoint's waiters only
    state.slot_freed = CountingCondition(guard._lock)  # on the lock it was made on
    with ThreadPoolExecutor(4) as pool:
        waiting = [pool.submit(guard.enter, SLOW, 5.0) for _ in range(4)]
        time.sleep(0.2)  # all four are waiting by now
        guard.leave(SLOW, None)
        time.sleep(0.2)
        assert CountingCondition.wake_ups == 1
        for _ in range(3):
            guard.leave(SLOW, None)
        assert [future.result() for future in waiting] == [None] * 4
