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
