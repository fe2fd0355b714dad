"""The bounded words that logs, metrics and dead letters share: outcomes, causes, reasons, states.

Each is a ``StrEnum``: it prints, compares and serialises as its value (the
label a dashboard or an alert selects on, the field a log line carries), and
a type checker refuses a word that is not one of them. That is what keeps
metric labels bounded, with no per-call check.
"""

from __future__ import annotations

from enum import StrEnum


class EventOutcome(StrEnum):
    """What became of an event taken off the events queue."""

    FANNED_OUT = "fanned_out"
    NO_SUBSCRIBERS = "no_subscribers"
    INVALID = "invalid"


class DeliveryOutcome(StrEnum):
    """How a delivery finished."""

    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    BLOCKED = "blocked"  # dead-lettered because its endpoint's address is refused (SSRF guard)
    SKIPPED = "skipped"  # its subscription was removed: nowhere left to deliver it


class SkipReason(StrEnum):
    """Why a delivery was skipped, never attempted: the reason the delivery log gives for it."""

    SUBSCRIPTION_DISABLED = "subscription_disabled"  # paused or disabled when the event came
    SUBSCRIPTION_REMOVED = "subscription_removed"  # removed while the delivery waited for a retry


class RecordKind(StrEnum):
    """What a delivery-log record describes: an event received, an attempt, a state change."""

    EVENT = "event"
    ATTEMPT = "attempt"
    STATE = "state"


class Cause(StrEnum):
    """Why a delivery was given up and dead-lettered."""

    EXHAUSTED = "exhausted"  # every attempt of the schedule failed
    PERMANENT = "permanent"  # 410 Gone, a refused address, or a 4xx when those are not retried
    MAX_AGE = "max_age"  # the next attempt would fall past HOOKLINE_RETRY_MAX_AGE
    DISABLED = "disabled"  # its subscription was disabled while it was under way


class Rejection(StrEnum):
    """A message parked whole, not a delivery given up: the other reasons of ``hookline_dead_letters``."""

    INVALID_EVENT = "invalid_event"  # not a valid event: kept byte for byte in <prefix>.events.invalid
    CRASHED = "crashed"  # its actor raised, or what it handed on was not stored: in <queue>.XQ


class Reason(StrEnum):
    """How one attempt failed (``DeliveryFailed.reason``)."""

    ERROR = "error"
    TIMEOUT = "timeout"
    CONNECT = "connect"
    DNS = "dns"
    TLS = "tls"
    REDIRECT = "redirect"
    HTTP_STATUS = "http_status"
    CIRCUIT_OPEN = "circuit_open"
    BLOCKED_ADDRESS = "blocked_address"


class StatusClass(StrEnum):
    """The class of an HTTP status an endpoint answered with."""

    INFORMATIONAL = "1xx"
    SUCCESS = "2xx"
    REDIRECT = "3xx"
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    OTHER = "other"  # outside 100-599: a broken server

    @classmethod
    def of(cls, status: int) -> StatusClass:
        return _STATUS_CLASSES.get(status // 100, cls.OTHER)


_STATUS_CLASSES = {int(each.value[0]): each for each in StatusClass if each is not StatusClass.OTHER}


class Refusal(StrEnum):
    """Why a delivery was not attempted now (not an attempt: it waits and comes back)."""

    ENDPOINT_BUSY = "endpoint_busy"  # at its in-flight cap and answering: a slot frees soon
    ENDPOINT_STALLED = "endpoint_stalled"  # at its cap and nothing came back lately
    CIRCUIT_OPEN = "circuit_open"  # its breaker is open: fails fast, follows the retry schedule


class BreakerChange(StrEnum):
    OPENED = "opened"
    CLOSED = "closed"


class DisabledReason(StrEnum):
    """Why a subscription is disabled."""

    FAILING = "failing"  # its endpoint failed for HOOKLINE_AUTO_DISABLE_AFTER
    GONE = "gone"  # its endpoint answered 410 Gone
    MANUAL = "manual"  # an operator disabled it


class ProcessState(StrEnum):
    """A worker process as its heartbeat reports it to ``/healthz`` and ``hookline_worker_processes``."""

    STARTING = "starting"  # importing, connecting: not consuming yet
    CONSUMING = "consuming"  # the dramatiq worker runs and all its threads are alive
    THREAD_DIED = "stalled"  # a worker or consumer thread died (the label stays "stalled")
    STOPPING = "stopping"  # SIGTERM received: finishing what it holds
    STALE = "stale"  # as the parent sees it: no heartbeat for a while, the process hangs or died
