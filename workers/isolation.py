"""Keeping one bad endpoint from hurting the others, inside one worker process.

Two guards per endpoint (its origin: scheme, host and port):

- **a cap on requests in flight**: when an endpoint already has
  ``HOOKLINE_ENDPOINT_MAX_IN_FLIGHT`` requests open in this process, another
  delivery to it waits a moment (``HOOKLINE_ENDPOINT_BUSY_WAIT``) for a slot:
  a fast endpoint frees one within milliseconds. If none frees, the endpoint
  is slow, and the delivery does not keep the worker thread: it is sent back to
  wait in RabbitMQ, without counting as an attempt;
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
from urllib.parse import urlsplit

from workers.errors import (
    ConnectFailure,
    DeliveryFailed,
    DeliveryTimeout,
    DnsFailure,
    RetryableHttpStatus,
    TlsFailure,
)

BUSY = "endpoint_busy"
OPEN = "circuit_open"


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

    def enter(self, endpoint: str, wait: float = 0.0) -> str | None:
        """None if a request may go now (the caller must then call leave); else BUSY or OPEN.

        An endpoint at its cap is waited for, up to ``wait`` seconds, before it counts as BUSY.
        """
        deadline = time.monotonic() + wait
        with self._lock:
            state = self._endpoints.get(endpoint) or self._add(endpoint)
            while not state.open_until and state.in_flight >= self.max_in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or not state.slot_freed.wait(left):
                    return BUSY
            if state.open_until:
                if self.clock() < state.open_until or state.probing:
                    return OPEN
                state.probing = True  # half-open: this request is the probe
            state.in_flight += 1
            return None

    def _add(self, endpoint: str) -> _Endpoint:
        state = self._endpoints[endpoint] = _Endpoint(threading.Condition(self._lock))
        return state

    def leave(self, endpoint: str, failure: DeliveryFailed | None) -> bool:
        """Record a request's outcome; True if this outcome opened the breaker."""
        trouble = failure is not None and is_endpoint_trouble(failure)
        with self._lock:
            state = self._endpoints[endpoint]
            state.in_flight -= 1
            state.slot_freed.notify()
            was_probe, state.probing = state.probing, False
            if not trouble:
                state.failures, state.open_until, state.cooldown = 0, 0.0, 0.0
                return False
            state.failures += 1
            if was_probe or state.failures >= self.failure_threshold:
                limit = self.base_cooldown * 10
                state.cooldown = min(limit, state.cooldown * 2) if was_probe else self.base_cooldown
                state.open_until = self.clock() + state.cooldown
                return True
            return False

    def open_breakers(self) -> int:
        now = self.clock()
        with self._lock:
            return sum(1 for state in self._endpoints.values() if state.open_until > now)
