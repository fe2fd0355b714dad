"""Errors raised by the producer.

::

    ProducerError
     ├── ConfigurationError        a HOOKLINE_* setting is missing or wrong
     ├── InvalidEvent              the event breaks the wire contract (also a ValueError)
     │    └── EventTooLarge        its JSON is over HOOKLINE_MAX_EVENT_BYTES
     └── PublishError             the broker did not take the event
          ├── BrokerUnavailable    no connection, or it was lost before the confirm
          ├── ExchangeNotFound     the exchange does not exist: run `hookline setup`
          ├── EventUnroutable      returned by the broker: no queue is bound for it
          ├── EventNacked          the broker refused it (nack)
          └── ConfirmTimeout       no confirm within the timeout: fate unknown, publish again

Every :class:`PublishError` means the event may not be stored: publish it
again (receivers deduplicate on ``webhook-id``, so a repeat is harmless).

:func:`root_cause` finds what really went wrong under a library's wrapping; the
workers use it too (``workers`` may import ``producer``, never the reverse).
"""

from __future__ import annotations


class ProducerError(Exception):
    """Base class of every error the producer raises."""


class ConfigurationError(ProducerError):
    """A ``HOOKLINE_*`` setting is missing or invalid."""


class InvalidEvent(ProducerError, ValueError):
    """The event does not follow the wire contract."""


class EventTooLarge(InvalidEvent):
    """The event's JSON encoding is larger than the configured limit."""


class PublishError(ProducerError):
    """The broker did not confirm that it stored the event."""


class BrokerUnavailable(PublishError):
    """The broker could not be reached, or the connection was lost."""


class ExchangeNotFound(PublishError):
    """The exchange does not exist yet; ``hookline setup`` declares it."""


class EventUnroutable(PublishError):
    """The broker returned the event (``mandatory``): no queue is bound for its type."""


class EventNacked(PublishError):
    """The broker answered with a negative acknowledgement."""


class ConfirmTimeout(PublishError):
    """No confirm arrived in time; the event may or may not be stored."""


def root_cause(error: BaseException) -> BaseException:
    """The innermost exception under ``error``: the one that says what really went wrong.

    Libraries nest it in different places: ``raise ... from`` (``__cause__``), an
    exception passed as the first argument (pika, dramatiq's ``ConnectionClosed``,
    httpcore), ``.exception`` (pika's connector phases), ``.exceptions`` (pika's
    connection workflow: the last attempt), or the exception being handled.
    """
    seen = {id(error)}
    while (inner := _inner(error)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        error = inner
    return error


def _inner(error: BaseException) -> BaseException | None:
    several = getattr(error, "exceptions", None)
    candidates = (
        error.__cause__,
        getattr(error, "exception", None),
        several[-1] if isinstance(several, list | tuple) and several else None,
        error.args[0] if error.args else None,
        # Even when suppressed (``from None``): httpcore re-raises a backend's error that way.
        error.__context__,
    )
    return next((each for each in candidates if isinstance(each, BaseException)), None)
