"""Keeping one bad endpoint from hurting the others, inside one worker process.

Two guards per endpoint (its origin: scheme, host and port):

- **a cap on requests in flight**: when an endpoint already has
  ``HOOKLINE_ENDPOINT_MAX_IN_FLIGHT`` requests open in this process, another
  delivery to it waits a moment (``HOOKLINE_ENDPOINT_BUSY_WAIT``) for a slot,
  but only while the endpoint is making progress (a request to it finished, or
  the oldest one started, within that moment) and its last request did not
  time out (a new endpoint's first answer is waited for by as many threads as
  its cap, until 0.25 s after that request started): a fast endpoint frees a
  slot within milliseconds. Otherwise no thread waits: the delivery is sent
  back to wait in RabbitMQ, without counting as an attempt, briefly if the
  endpoint is busy, longer if it is stalled. The cap is 1 until the endpoint's
  last request got an answer in time (a new endpoint, or one whose last
  request timed out), so an endpoint that starts to hang holds one thread per
  process, not the whole cap;
- **a circuit breaker**: after ``HOOKLINE_BREAKER_FAILURES`` consecutive
  failures that say the endpoint itself is in trouble (timeouts, connection,
  DNS and TLS errors, 5xx, 429), it opens for ``HOOKLINE_BREAKER_COOLDOWN``;
  deliveries meanwhile fail at once with reason ``circuit_open`` and follow the
  retry schedule, without a request. Then one probe goes through (half-open):
  success closes the breaker, failure opens it again for twice as long (up to
  ten times the cooldown).

State is per process and in memory: each process learns on its own, which
costs a few requests per process and needs no coordination.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from workers.errors import (
    ConnectFailure,
    DeliveryFailed,
    DeliveryTimeout,
    DnsFailure,
    RetryableHttpStatus,
    TlsFailure,
)
from workers.vocabulary import BreakerChange, Refusal

# How long after a new endpoint's first request started deliveries wait for its answer: enough for
# a connect and a TLS handshake to a distant host; if it hangs, its waiters are soon free again,
# and later deliveries to it do not wait at all.
FIRST_ANSWER_WAIT = 0.25


@lru_cache(maxsize=4096)  # called per attempt; a process sees few distinct URLs
def endpoint_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def is_endpoint_trouble(failure: DeliveryFailed) -> bool:
    """Failures that say the endpoint is down or overloaded, not that this one webhook was refused."""
    if isinstance(failure, DeliveryTimeout | ConnectFailure | DnsFailure | TlsFailure):
        return True
    return (
        isinstance(failure, RetryableHttpStatus)
        and failure.status is not None
        and (failure.status >= 500 or failure.status == 429)
    )


@dataclass
class _Endpoint:
    slot_freed: threading.Condition  # on the Endpoints lock: wakes one waiter for this endpoint
    in_flight: int = 0
    # clock() when a request to it last finished, or when one started with none in flight.
    progress: float = float("-inf")
    answering: bool = False  # its last request got an answer in time: the whole cap is open to it
    timed_out: bool = False  # its last request timed out: no thread waits for it
    waiters: int = 0  # threads in enter() waiting for a slot
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    probing: bool = False


class Endpoints:
    """Admission for requests to endpoints: :meth:`enter` before a request, :meth:`leave` after it."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        failure_threshold: int,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_in_flight = max_in_flight
        self.failure_threshold = failure_threshold
        self.base_cooldown = cooldown
        self.clock = clock
        self._lock = threading.Lock()
        self._endpoints: dict[str, _Endpoint] = {}

    def enter(self, endpoint: str, wait: float = 0.0) -> Refusal | None:
        """None if a request may go now (the caller must then call leave); else BUSY, STALLED or OPEN.

        An endpoint at its cap is STALLED if no request to it finished (or started) within the
        last ``wait`` seconds. Otherwise it is waited for, up to ``wait`` seconds (then BUSY),
        unless its last request timed out: then it is BUSY at once. A new endpoint is waited for
        by at most as many threads as its cap, until FIRST_ANSWER_WAIT after its first request
        started.
        """
        deadline = time.monotonic() + wait
        with self._lock:
            state = self._endpoints.get(endpoint) or self._add(endpoint)
            if state.open_until:
                return self._probe(state)
            if state.in_flight >= self._cap(state):
                if self.clock() - state.progress >= wait:
                    # Nothing came back lately: a slow endpoint, not worth a thread.
                    return Refusal.ENDPOINT_STALLED
                if state.timed_out:
                    return Refusal.ENDPOINT_BUSY  # known to hang: no thread waits on it
                if not state.answering:
                    # A new endpoint: as many threads as its cap wait for its first answer, until
                    # FIRST_ANSWER_WAIT after that request started: one that hangs holds few threads,
                    # briefly, and once.
                    if state.waiters >= self.max_in_flight:
                        return Refusal.ENDPOINT_BUSY
                    first_answer_due = state.progress + FIRST_ANSWER_WAIT - self.clock()
                    deadline = min(deadline, time.monotonic() + first_answer_due)
                state.waiters += 1
                try:
                    refusal = self._wait_for_slot(state, deadline)
                finally:
                    state.waiters -= 1
                if refusal is not None:
                    return refusal
            self._admit(state)
            return None

    def _wait_for_slot(self, state: _Endpoint, deadline: float) -> Refusal | None:
        """None once a slot is free; OPEN if the breaker opened meanwhile, BUSY at the deadline."""
        while not state.open_until:
            if state.in_flight < self._cap(state):
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                # A slot freed as the wait ran out woke this one: hand it to the next waiter.
                self._wake_for_free_slots(state)
                return Refusal.ENDPOINT_BUSY
            state.slot_freed.wait(left)
        # It opened while this one waited: no probe is due before its cooldown.
        return Refusal.CIRCUIT_OPEN

    def _wake_for_free_slots(self, state: _Endpoint) -> None:
        # One waiter per free slot: a slot a newly arrived thread took meanwhile is not free, and the
        # waiter woken for it sleeps again until the next one. Waking all would cost every waiter a
        # wake-up and a turn at the GIL per finished request, to find nothing.
        free = self._cap(state) - state.in_flight
        if free > 0 and state.waiters:
            state.slot_freed.notify(free)

    def _probe(self, state: _Endpoint) -> Refusal | None:
        """While the breaker is open: OPEN, except for one probe once the cooldown is over (half-open)."""
        if self.clock() < state.open_until or state.probing:
            return Refusal.CIRCUIT_OPEN
        state.probing = True
        self._admit(state)
        return None

    def _admit(self, state: _Endpoint) -> None:
        if state.in_flight == 0:
            state.progress = self.clock()
        state.in_flight += 1

    def _cap(self, state: _Endpoint) -> int:
        return self.max_in_flight if state.answering else 1

    def _add(self, endpoint: str) -> _Endpoint:
        state = self._endpoints[endpoint] = _Endpoint(threading.Condition(self._lock))
        return state

    def leave(self, endpoint: str, failure: DeliveryFailed | None) -> BreakerChange | None:
        """Record a request's outcome; OPENED or CLOSED if it changed the breaker, else None."""
        trouble = failure is not None and is_endpoint_trouble(failure)
        with self._lock:
            state = self._endpoints[endpoint]
            state.in_flight -= 1
            state.progress = self.clock()
            # Only a timeout held a thread for long; an endpoint failing fast costs threads nothing.
            state.timed_out = isinstance(failure, DeliveryTimeout)
            state.answering = not state.timed_out
            change = self._count(state, trouble=trouble)
            if change is BreakerChange.OPENED:
                state.slot_freed.notify_all()  # every waiter leaves, refused
            else:
                self._wake_for_free_slots(state)  # the cap may have grown from 1: maybe several
            return change

    def _count(self, state: _Endpoint, *, trouble: bool) -> BreakerChange | None:
        """Count a request's outcome towards the breaker; OPENED or CLOSED if that changed it."""
        was_probe, state.probing = state.probing, False
        if not trouble:
            was_open = bool(state.open_until)
            state.failures, state.open_until, state.cooldown = 0, 0.0, 0.0
            return BreakerChange.CLOSED if was_open else None
        state.failures += 1
        if was_probe or state.failures >= self.failure_threshold:
            limit = self.base_cooldown * 10
            state.cooldown = min(limit, state.cooldown * 2) if was_probe else self.base_cooldown
            state.open_until = self.clock() + state.cooldown
            return BreakerChange.OPENED
        return None

    def reopens_in(self, endpoint: str) -> float:
        """Seconds until the endpoint's open breaker lets a probe through (0 if it is not open)."""
        with self._lock:
            state = self._endpoints.get(endpoint)
            return 0.0 if state is None else max(0.0, state.open_until - self.clock())

    def open_breakers(self) -> int:
        """Breakers not closed: open, or half-open with a probe to come."""
        with self._lock:
            return sum(1 for state in self._endpoints.values() if state.open_until)
