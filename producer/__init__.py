"""Publish events for hookline to deliver as signed webhooks.

The base install (``pip install hookline``) is all a publishing service needs;
nothing here imports the workers, dramatiq, httpx or a database driver::

    from producer import Event, Publisher, PublishError

    with Publisher() as publisher:  # settings from HOOKLINE_AMQP_URL, HOOKLINE_EXCHANGE, ...
        event = Event.create("order.created", {"order_id": "ord_123", "total": 4200})
        try:
            publisher.publish(event)  # returns once RabbitMQ has confirmed it
        except PublishError:
            ...  # not stored: publish the same event again (receivers deduplicate on its id)

        failures = publisher.publish_many(events)  # pipelined; [] means all confirmed
"""

from producer.errors import (
    BrokerUnavailable,
    ConfigurationError,
    ConfirmTimeout,
    EventNacked,
    EventTooLarge,
    EventUnroutable,
    ExchangeNotFound,
    InvalidEvent,
    ProducerError,
    PublishError,
)
from producer.event import Event
from producer.publisher import Publisher
from producer.settings import ProducerSettings

__all__ = [
    "BrokerUnavailable",
    "ConfigurationError",
    "ConfirmTimeout",
    "Event",
    "EventNacked",
    "EventTooLarge",
    "EventUnroutable",
    "ExchangeNotFound",
    "InvalidEvent",
    "ProducerError",
    "ProducerSettings",
    "PublishError",
    "Publisher",
]
