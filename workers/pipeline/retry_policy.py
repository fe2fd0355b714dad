"""When a failed delivery is tried again, or given up.

The decision reads the failure's *type* (see workers/errors.py), the attempt
number and the delivery's age:

- permanent failures (410 Gone; other 4xx when ``HOOKLINE_RETRY_CLIENT_ERRORS``
  is false) are given up at once;
- otherwise attempt *n* is followed by the *n*-th wait of
  ``HOOKLINE_RETRY_SCHEDULE``, scaled by a random factor within
  ±``HOOKLINE_RETRY_JITTER`` so that deliveries failing together do not retry
  together; a ``Retry-After`` longer than that wait is honoured, up to
  ``HOOKLINE_RETRY_AFTER_MAX``;
- past the last wait, or when the next attempt would fall later than
  ``HOOKLINE_RETRY_MAX_AGE`` after the first, the delivery is given up.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from workers.errors import (
    CircuitOpen,
    ClientErrorStatus,
    DeliveryFailed,
    PermanentDeliveryFailure,
    RetryableHttpStatus,
)
from workers.settings import Settings
from workers.vocabulary import Cause


@dataclass(frozen=True, slots=True)
class RetryAt:
    at: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    cause: Cause


@dataclass(frozen=True)
class RetryPolicy:
    schedule: tuple[float, ...]
    jitter: float
    max_age: float
    retry_after_max: float
    retry_client_errors: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            schedule=settings.retry_schedule,
            jitter=settings.retry_jitter,
            max_age=settings.retry_max_age,
            retry_after_max=settings.retry_after_max,
            retry_client_errors=settings.retry_client_errors,
        )

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def decide(
        self, failure: DeliveryFailed, *, attempt: int, first_attempt_at: float, now: float
    ) -> RetryAt | GiveUp:
        """What follows failed attempt number ``attempt`` (1-based)."""
        if isinstance(failure, PermanentDeliveryFailure) or (
            isinstance(failure, ClientErrorStatus) and not self.retry_client_errors
        ):
            return GiveUp(Cause.PERMANENT)
        if attempt > len(self.schedule):
            return GiveUp(Cause.EXHAUSTED)
        at = now + self.wait(failure, attempt)
        if at - first_attempt_at > self.max_age:
            return GiveUp(Cause.MAX_AGE)
        return RetryAt(at)

    def wait(self, failure: DeliveryFailed, attempt: int) -> float:
        # Jitter spreads retries, it is no secret: random is fine here.
        base = self.schedule[attempt - 1] * random.uniform(1 - self.jitter, 1 + self.jitter)  # noqa: S311
        # The receiver's Retry-After, or the time until an open breaker lets a probe through.
        retry_after = failure.retry_after if isinstance(failure, RetryableHttpStatus | CircuitOpen) else None
        if retry_after is not None:
            return max(base, min(retry_after, self.retry_after_max))
        return base
