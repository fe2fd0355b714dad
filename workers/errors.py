"""Errors raised by the workers and the operator commands.

::

    HooklineError
     ├── ConfigurationError (also producer.errors.ConfigurationError)
     ├── StoreError                      the subscription store failed or refused
     │    ├── DatabaseNotMigrated        schema behind the code: run `hookline setup`
     │    ├── SubscriptionNotFound
     │    └── InvalidSubscription        bad URL, event pattern or secret (also a ValueError)
     ├── TopologyError                   exchange/queues could not be declared
     └── DeliveryFailed                  one attempt to POST a webhook failed; has .reason
          ├── RetryableDeliveryFailure   worth another attempt later
          │    ├── DeliveryTimeout       reason "timeout"
          │    ├── ConnectFailure        reason "connect"
          │    ├── DnsFailure            reason "dns"
          │    ├── TlsFailure            reason "tls"
          │    ├── RedirectNotFollowed   reason "redirect" (any 3xx; .location says where)
          │    └── RetryableHttpStatus   reason "http_status" (5xx, 408, 429, most 4xx)
          └── PermanentDeliveryFailure   another attempt would fail the same way
               └── EndpointGone          reason "http_status", 410 Gone

Whether a failure is retried is decided by its type, never by parsing a message.
"""

from __future__ import annotations

from producer.errors import ConfigurationError as ProducerConfigurationError


class HooklineError(Exception):
    """Base class of every error raised by ``workers``."""


class ConfigurationError(HooklineError, ProducerConfigurationError):
    """A ``HOOKLINE_*`` setting is missing or invalid."""


class StoreError(HooklineError):
    """The subscription store failed or refused an operation."""


class DatabaseNotMigrated(StoreError):
    """The database schema is older than this code; ``hookline setup`` migrates it."""


class SubscriptionNotFound(StoreError, LookupError):
    """No subscription has the given id."""


class InvalidSubscription(StoreError, ValueError):
    """A subscription field (URL, event pattern, secret) is invalid."""


class TopologyError(HooklineError):
    """The exchange, queues or bindings could not be declared."""


class DeliveryFailed(HooklineError):
    """One delivery attempt failed.

    ``reason`` is a short, bounded kind (``http_status``, ``timeout``, ``connect``,
    ``dns``, ``tls``, ...) carried by logs, metrics and dead letters alike;
    ``status`` is the HTTP status when there was a response.
    """

    reason = "error"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableDeliveryFailure(DeliveryFailed):
    """Worth another attempt later."""


class DeliveryTimeout(RetryableDeliveryFailure):
    reason = "timeout"


class ConnectFailure(RetryableDeliveryFailure):
    reason = "connect"


class DnsFailure(RetryableDeliveryFailure):
    reason = "dns"


class TlsFailure(RetryableDeliveryFailure):
    reason = "tls"


class RedirectNotFollowed(RetryableDeliveryFailure):
    """A 3xx answer: redirects are never followed, the endpoint's URL must be fixed."""

    reason = "redirect"

    def __init__(self, message: str, *, status: int | None = None, location: str | None = None) -> None:
        super().__init__(message, status=status)
        self.location = location


class RetryableHttpStatus(RetryableDeliveryFailure):
    reason = "http_status"


class PermanentDeliveryFailure(DeliveryFailed):
    """Another attempt would fail the same way."""


class EndpointGone(PermanentDeliveryFailure):
    reason = "http_status"
