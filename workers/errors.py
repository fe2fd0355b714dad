"""Errors raised by the workers and the operator commands.

::

    HooklineError
     ├── ConfigurationError (also producer.errors.ConfigurationError)
     │    └── SecretsKeyError            HOOKLINE_SECRETS_KEY unset, or it cannot decrypt a stored
     │                                   signing secret (the key is never in the message)
     ├── StoreError                      the subscription store failed or refused
     │    ├── DatabaseNotMigrated        schema behind the code: run `hookline setup`
     │    ├── SubscriptionNotFound
     │    ├── InvalidSubscription        bad URL, event pattern or secret (also a ValueError)
     │    ├── ApiKeyNotFound             no API key has the given id (`hookline api-keys revoke`)
     │    └── InvalidApiKeyName          an API key's name empty, too long or unprintable (a ValueError)
     ├── LogStoreError                   the delivery log's database failed or refused (a schema
     │    │                              behind the code is DatabaseNotMigrated, as above)
     │    └── LogEntryNotFound           no event or delivery in the log has the given id
     │         ├── EventNotFound          ... an event (`GET /v1/events/{id}`)
     │         └── DeliveryNotFound       ... a delivery (`GET /v1/deliveries/{id}`)
     ├── ApiRequestRefused               the HTTP API refused a request (workers/api/problems.py
     │    │                              gives each its status and problem type); never names a key
     │    ├── NotAuthenticated           no API key, or one that is unknown or revoked (401)
     │    ├── ReadOnlyKey                a read-only key asked to change something (403)
     │    ├── RequestTooLarge            a body over HOOKLINE_API_MAX_BODY_BYTES (413)
     │    ├── UnsupportedMediaType       a body that is not application/json (415)
     │    ├── InvalidCursor              a page cursor this API did not hand out (422)
     │    ├── IdempotencyKeyReused       an Idempotency-Key sent again with another request (422)
     │    ├── IdempotencyKeyInUse        an Idempotency-Key whose first request is still running (409)
     │    └── ReplayJobNotFound          no replay job with the given id in this API process (404)
     ├── TopologyError                   exchange/queues could not be declared
     ├── BrokerUnreachable               RabbitMQ did not answer a read of queue depths
     ├── ScrapeFailed                    a /metrics page could not be read (`hookline status`)
     ├── MetricsServerError              the metrics port could not be opened (`hookline worker`)
     ├── BenchError                      a bench run cannot go on (broker down, workers missing);
     │                                   `hookline bench` exits 2
     ├── DelayNotStored                  RabbitMQ did not confirm deliveries sent to wait in a
     │                                   delay queue: the message that carried them is rejected
     ├── RecordsNotStored                RabbitMQ did not confirm the delivery-log records of a
     │                                   message: it is rejected, never acked without them
     ├── RecorderError                   `hookline recorder` cannot go on (its log database or
     │                                   queue cannot be opened at start)
     ├── DeadLetterError                 the dead-letters queue could not be read or changed
     │    ├── DeadLetterNotFound         no dead letter in the queue has the given id
     │    │    └── ParkedMessageNotFound  no invalid event or crashed message has the given id
     │    └── ReplayRefused              one dead letter was not replayed and stays parked:
     │                                   subscription disabled or removed, body not a dead
     │                                   letter, or the broker did not confirm the copy
     ├── ReplayError                     a replay from the delivery log was refused or stopped:
     │    │                              subscription disabled or removed, or the broker failed
     │    ├── RetryNotStored             RabbitMQ did not confirm a delivery published to the
     │    │                              retries queue (no such queue, or it refused the message)
     │    └── ReplayStopped              a replay job stopped part way: its API process shut down
     └── DeliveryFailed                  one attempt to POST a webhook failed; has .reason
          ├── RetryableDeliveryFailure   worth another attempt later
          │    ├── DeliveryTimeout       reason "timeout"
          │    ├── ConnectFailure        reason "connect"
          │    ├── DnsFailure            reason "dns"
          │    ├── TlsFailure            reason "tls"
          │    ├── RedirectNotFollowed   reason "redirect" (any 3xx; .location says where)
          │    ├── CircuitOpen           reason "circuit_open": not attempted, the endpoint's breaker is open;
          │    │                         .retry_after: until it lets a probe through
          │    └── RetryableHttpStatus   reason "http_status": 5xx, 408, 425, 429; .retry_after
          │         └── ClientErrorStatus  other 4xx: retried unless HOOKLINE_RETRY_CLIENT_ERRORS=false
          └── PermanentDeliveryFailure   another attempt would fail the same way
               ├── EndpointGone          reason "http_status", 410 Gone
               └── BlockedAddress        reason "blocked_address": the host is or resolves to an
                                         address webhooks may not reach (loopback, private,
                                         link-local, ...; see workers/netguard.py)

Whether a failure is retried is decided by its type, never by parsing a message.
"""

from __future__ import annotations

from producer.errors import ConfigurationError as ProducerConfigurationError
from producer.errors import root_cause
from workers.vocabulary import Reason


class HooklineError(Exception):
    """Base class of every error raised by ``workers``."""


class ConfigurationError(HooklineError, ProducerConfigurationError):
    """A ``HOOKLINE_*`` setting is missing or invalid."""


class SecretsKeyError(ConfigurationError):
    """``HOOKLINE_SECRETS_KEY`` is unset, or none of its keys decrypts a stored signing secret.

    A configuration error (exit 2), not a store error: what needs fixing is the
    key given, not the database. The message names the variable (and the
    subscription whose secret it could not decrypt), never a key or a secret.
    """


class StoreError(HooklineError):
    """The subscription store failed or refused an operation."""


class DatabaseNotMigrated(StoreError):
    """The database schema is older than this code; ``hookline setup`` migrates it."""


class SubscriptionNotFound(StoreError, LookupError):
    """No subscription has the given id."""


class InvalidSubscription(StoreError, ValueError):
    """A subscription field (URL, event pattern, secret) is invalid."""


class ApiKeyNotFound(StoreError, LookupError):
    """No API key has the given id."""


class InvalidApiKeyName(StoreError, ValueError):
    """An API key's name is empty, too long or holds characters that cannot be printed."""


class ApiRequestRefused(HooklineError):
    """The HTTP API refused a request; :mod:`workers.api.problems` answers it as a problem detail.

    The message is the problem's ``detail``: it never carries an API key.
    """


class NotAuthenticated(ApiRequestRefused):
    """No ``Authorization: Bearer`` API key, or one that is unknown or revoked."""


class ReadOnlyKey(ApiRequestRefused):
    """A read-only API key asked for something that changes state."""


class RequestTooLarge(ApiRequestRefused):
    """A request body larger than ``HOOKLINE_API_MAX_BODY_BYTES``."""


class UnsupportedMediaType(ApiRequestRefused):
    """A request body that is not ``application/json``."""


class InvalidCursor(ApiRequestRefused):
    """A page cursor that this API did not hand out, or that was altered."""


class IdempotencyKeyReused(ApiRequestRefused):
    """An ``Idempotency-Key`` sent again with a different method, path or body."""


class IdempotencyKeyInUse(ApiRequestRefused):
    """An ``Idempotency-Key`` whose first request has not finished: retry later."""


class ReplayJobNotFound(ApiRequestRefused, LookupError):
    """No replay job has the given id in this API process (jobs are kept in its memory)."""


class LogStoreError(HooklineError):
    """The delivery log's database failed or refused an operation; the message names it without a password."""


class LogEntryNotFound(LogStoreError, LookupError):
    """No event or delivery in the delivery log has the given id (or it is past its retention)."""


class EventNotFound(LogEntryNotFound):
    """No event in the delivery log has the given id."""


class DeliveryNotFound(LogEntryNotFound):
    """No delivery in the delivery log has the given id."""


class TopologyError(HooklineError):
    """The exchange, queues or bindings could not be declared."""


class BrokerUnreachable(HooklineError):
    """RabbitMQ did not answer; the message names it without a password."""


class ScrapeFailed(HooklineError):
    """A metrics page could not be read."""


class MetricsServerError(HooklineError):
    """The metrics port could not be opened."""


class BenchError(HooklineError):
    """The bench run cannot go on; the message is one line saying why (``hookline bench`` exits 2)."""


class DeadLetterError(HooklineError):
    """The dead-letters queue could not be read or changed (see :mod:`workers.dlq`)."""


class DeadLetterNotFound(DeadLetterError, LookupError):
    """No dead letter in the queue has the given id."""


class ParkedMessageNotFound(DeadLetterNotFound):
    """No invalid event (or crashed message) in its parking queues has the given id."""


class ReplayRefused(DeadLetterError):
    """One dead letter was not replayed and stays in the queue; the message says why."""


class ReplayError(HooklineError):
    """A replay from the delivery log was refused, or stopped part way; the message says which and why."""


class RetryNotStored(ReplayError):
    """RabbitMQ did not confirm a delivery published to the retries queue: it may not hold it."""


class ReplayStopped(ReplayError):
    """A replay job stopped between two batches because its API process was shutting down."""


class DeliveryFailed(HooklineError):
    """One delivery attempt failed.

    ``reason`` is a short, bounded kind (``http_status``, ``timeout``, ``connect``,
    ``dns``, ``tls``, ...) carried by logs, metrics and dead letters alike;
    ``status`` is the HTTP status when there was a response, and
    ``response_body`` the start of what the endpoint answered (as much as
    ``HOOKLINE_MAX_RESPONSE_BYTES`` read), for the delivery log.
    """

    reason = Reason.ERROR

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.response_body: bytes | None = None


class RetryableDeliveryFailure(DeliveryFailed):
    """Worth another attempt later."""


class DeliveryTimeout(RetryableDeliveryFailure):
    reason = Reason.TIMEOUT


class ConnectFailure(RetryableDeliveryFailure):
    reason = Reason.CONNECT


class DnsFailure(RetryableDeliveryFailure):
    reason = Reason.DNS


class TlsFailure(RetryableDeliveryFailure):
    reason = Reason.TLS


class RedirectNotFollowed(RetryableDeliveryFailure):
    """A 3xx answer: redirects are never followed, the endpoint's URL must be fixed."""

    reason = Reason.REDIRECT

    def __init__(self, message: str, *, status: int | None = None, location: str | None = None) -> None:
        super().__init__(message, status=status)
        self.location = location


class CircuitOpen(RetryableDeliveryFailure):
    """Not attempted: the endpoint failed repeatedly and its circuit breaker is open.

    ``retry_after`` is how long until the breaker lets a probe through: a retry
    sooner would only find it open again.
    """

    reason = Reason.CIRCUIT_OPEN

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RetryableHttpStatus(RetryableDeliveryFailure):
    """A status worth retrying; ``retry_after`` is the receiver's Retry-After, in seconds."""

    reason = Reason.HTTP_STATUS

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ClientErrorStatus(RetryableHttpStatus):
    """A 4xx other than 408, 410, 425 and 429.

    Receivers often answer 400 or 404 while they deploy, and the established
    senders retry these; an operator can make them final instead.
    """


class PermanentDeliveryFailure(DeliveryFailed):
    """Another attempt would fail the same way."""


class EndpointGone(PermanentDeliveryFailure):
    reason = Reason.HTTP_STATUS


class BlockedAddress(PermanentDeliveryFailure):
    """The endpoint's host is, or resolves to, an address the SSRF guard refuses.

    Permanent: the same name keeps resolving to the same kind of address, and
    retrying would only probe the internal network again.
    """

    reason = Reason.BLOCKED_ADDRESS


class DelayNotStored(HooklineError):
    """RabbitMQ did not confirm a batch of deliveries sent to wait in a delay queue.

    The message that carried them is rejected, not acked: RabbitMQ keeps it in ``<queue>.XQ``.
    """


class RecordsNotStored(HooklineError):
    """RabbitMQ did not confirm the delivery-log records a message produced.

    Handled as :class:`DelayNotStored`: the message that produced them is rejected, not acked.
    """


class RecorderError(HooklineError):
    """``hookline recorder`` cannot start: its log database or its queue cannot be opened."""


def describe_cause(exc: BaseException) -> str:
    """What really went wrong under a library's wrapping, in a few words, for an error message."""
    cause = root_cause(exc)
    # pika's closes carry (reply_code, reply_text) as args: the text alone reads as a sentence.
    reply_text = getattr(cause, "reply_text", None)
    return str(reply_text or cause) or type(cause).__name__
