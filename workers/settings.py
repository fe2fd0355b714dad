"""Worker and operator settings: every ``HOOKLINE_*`` variable, with its default.

Each field's ``description`` is its documentation: docs/configuration.md is
generated from these descriptions by ``python -m workers.settings_doc``
(``--check`` says whether it is up to date).
"""

from __future__ import annotations

import base64
import ssl
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal

from pydantic import (
    BeforeValidator,
    DirectoryPath,
    Field,
    FilePath,
    SecretStr,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import NoDecode

from producer.settings import ProducerSettings
from workers.durations import parse_duration


def _seconds(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


def _schedule(value: object) -> object:
    if isinstance(value, str):
        return tuple(parse_duration(part) for part in value.split(",") if part.strip())
    return value


def _networks(value: object) -> object:
    if isinstance(value, str):
        return tuple(_network(part.strip()) for part in value.split(",") if part.strip())
    return value


# IPv6 ranges that stand for IPv4 addresses (the SSRF guard judges an address in them by the IPv4
# address inside): allowing one would open IPv4 space the operator did not name.
_TRANSLATED = {
    "IPv4-mapped": ip_network("::ffff:0:0/96"),
    "NAT64": ip_network("64:ff9b::/96"),
    "6to4": ip_network("2002::/16"),
}


def _network(text: str) -> IPv4Network | IPv6Network:
    try:
        network = ip_network(text)
    except ValueError as exc:
        # ipaddress says what is wrong ("has host bits set", "does not appear to be..."): keep it.
        raise ValueError(f"not a CIDR network: {exc}") from exc
    if network.prefixlen == 0:
        raise ValueError(f"{network} would open every address: name the private networks to allow")
    for name, translated in _TRANSLATED.items():
        if isinstance(network, IPv6Network) and network.overlaps(translated):
            raise ValueError(
                f"{network} overlaps {name} space ({translated}): allow the IPv4 network it stands for"
            )
    return network


def _secrets_keys(value: object) -> object:
    """Comma-separated Fernet keys, newest first; blank means unset (so ``${VAR:-}`` in Compose works)."""
    if not isinstance(value, str):
        return value
    keys = tuple(part.strip() for part in value.split(",") if part.strip())
    for position, key in enumerate(keys, start=1):
        if not _is_fernet_key(key):
            # Which one, never its value: the variable holds secrets.
            which = f"key {position} of {len(keys)}" if len(keys) > 1 else "the key"
            raise ValueError(
                f"{which} is not a Fernet key (32 bytes in URL-safe base64, 44 characters): "
                "generate one with `hookline secrets-key`"
            )
    return keys or None


def _is_fernet_key(text: str) -> bool:
    # Checked here without cryptography (the base layer imports no worker extra): the same test
    # Fernet's constructor makes.
    try:
        return len(base64.urlsafe_b64decode(text.encode("ascii"))) == FERNET_KEY_BYTES
    except (ValueError, UnicodeEncodeError):
        return False


# A duration: a number of seconds, or text such as "5s", "5m", "2h", "3d".
Seconds = Annotated[float, BeforeValidator(_seconds)]
# The waits before each retry, comma-separated in the environment ("5s,5m,30m").
Schedule = Annotated[tuple[float, ...], NoDecode, BeforeValidator(_schedule)]
# CIDR networks, comma-separated in the environment ("10.20.0.0/16,127.0.0.1/32").
Networks = Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode, BeforeValidator(_networks)]
# Fernet keys, comma-separated in the environment, newest first; SecretStr keeps them out of reprs.
SecretsKeys = Annotated[tuple[SecretStr, ...] | None, NoDecode, BeforeValidator(_secrets_keys)]
FERNET_KEY_BYTES = 32

DEFAULT_MAX_RESPONSE_BYTES = 4096
DEFAULT_BROKER_MAX_MESSAGE_BYTES = 128 * 1024 * 1024  # RabbitMQ's max_message_size default (3.8+)
ENCODED_GROWTH = 3  # the most JSON escaping can grow a UTF-8 body in a dramatiq message
MESSAGE_ENVELOPE_BYTES = 64 * 1024  # the delivery's other fields and the message around it

# How hookline declares its queues (see workers/broker/topology.py for the arguments of each).
QueueType = Literal["quorum", "classic"]

# Svix's and the Standard Webhooks schedule after the first attempt: about 27.5 hours in all.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class Settings(ProducerSettings):
    """Everything a worker or an operator command reads from the environment."""

    database_url: str = Field(
        default="sqlite:///hookline.db",
        description="Subscription store: `sqlite:///path` (embedded; a relative path is taken from the "
        "working directory, and a new file is made readable by its owner only) or "
        "`postgresql+psycopg://user:pass@host/db` (production).",
    )
    queue_prefix: str = Field(
        default="hookline",
        pattern=r"^[A-Za-z0-9_.-]{1,100}$",
        description="Prefix of every queue name (letters, digits, `_`, `.`, `-`).",
    )
    queue_type: QueueType = Field(
        default="quorum",
        description="`quorum`: every queue replicated on the cluster's nodes and available while a majority "
        "of them runs; waiting retries are moved on at least once; a message redelivered 20 times "
        "(one that kills its worker) is parked in `<queue>.XQ`. `classic`: each queue on one node, "
        "durable, unavailable while that node is down. A queue's type cannot change in place: see "
        "docs/deployment.md#moving-between-queue-types.",
    )
    http_connect_timeout: float = Field(
        default=5.0, gt=0, le=120, description="Seconds to establish the connection to a subscriber."
    )
    http_timeout: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description=(
            "Seconds for a whole attempt, one deadline for every phase: name resolution, connect, "
            "TLS, sending, interim responses, headers and the body read."
        ),
    )
    subscription_refresh_seconds: float = Field(
        default=2.0,
        gt=0,
        le=300,
        description="How often each worker process reloads subscriptions, in seconds. A change made "
        "with `hookline subscriptions` is announced to the workers and reloaded at once; this bounds "
        "how long one whose announcement was lost (broker unreachable) takes.",
    )
    secret_rotation_grace_seconds: int = Field(
        default=24 * 3600,
        ge=0,
        description="Seconds a rotated-out secret keeps signing, so receivers can switch: the default "
        "of `hookline subscriptions rotate-secret --grace`.",
    )
    secrets_key: SecretsKeys = Field(
        default=None,
        description="Fernet key that encrypts the subscriptions' signing secrets in the database "
        "(generate one with `hookline secrets-key`). To rotate: the new key, a comma, the old ones; the "
        "first encrypts, every one decrypts, and `hookline setup` re-encrypts the stored secrets with "
        "the first. Required by `setup`, `worker`, `subscriptions`, `dlq replay` and `replay`, unless "
        "`HOOKLINE_ALLOW_PLAINTEXT_SECRETS` is `true`.",
    )
    allow_plaintext_secrets: bool = Field(
        default=False,
        description="`true` stores signing secrets unencrypted while `HOOKLINE_SECRETS_KEY` is unset "
        "(development only; a key, once set, always encrypts).",
    )
    endpoint_max_in_flight: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Requests in flight to one endpoint, per worker process (1 while its last request "
        "timed out, or before its first answer).",
    )
    # How long a delivery waits for a slot at an endpoint at its cap before it is sent back to RabbitMQ:
    # at most the shortest wait in the broker (1 s), which would cost a round trip on top.
    endpoint_busy_wait: Seconds = Field(
        default=1.0,
        ge=0,
        le=10,
        description="How long a delivery waits for a slot at an endpoint at its cap that is making "
        "progress, before it is sent back to RabbitMQ. No wait if the endpoint's last request timed "
        "out; a new endpoint's first answer is waited for by as many threads as its cap, until 0.25 s "
        "after that request started.",
    )
    # Per process: spare threads for first attempts of events with several subscriptions.
    fan_out_concurrency: int = Field(
        default=4,
        ge=1,
        le=1000,
        description="Per process: spare threads that make the first attempts of an event with several "
        "subscriptions side by side (when none is idle, the fan-out thread makes them itself).",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Consecutive failures of an endpoint that open its circuit breaker.",
    )
    breaker_cooldown: Seconds = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long an opened circuit breaker stays open before its probe.",
    )
    allow_private_networks: bool = Field(
        default=False, description="`true` lifts the SSRF guard entirely (development only)."
    )
    allowed_networks: Networks = Field(
        default=(),
        description="Comma-separated CIDR networks deliverable even though private, e.g. "
        "`10.20.0.0/16,127.0.0.1/32`; `0.0.0.0/0`, `::/0` and IPv6 ranges overlapping the "
        "IPv4-mapped, NAT64 or 6to4 space are refused.",
    )
    ca_bundle: FilePath | None = Field(
        default=None,
        description="PEM file of CA certificates used instead of the default trust store (certifi's, "
        "when unset).",
    )
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=0,
        le=1024 * 1024,
        description="Bytes of a response body read and kept for logs and dead letters (0 to 1 MiB).",
    )
    retry_schedule: Schedule = Field(
        default=DEFAULT_RETRY_SCHEDULE,
        description="Waits before each retry, comma-separated durations; its length is the number of "
        "retries, empty means none.",
    )
    retry_jitter: float = Field(
        default=0.2, ge=0, lt=1, description="Each wait is scaled by a random factor in 1 ± this."
    )
    retry_max_age: Seconds = Field(
        default=3 * 86400.0,
        gt=0,
        description="A delivery whose next attempt would come later than this after its first is "
        "dead-lettered (cause `max_age`).",
    )
    retry_after_max: Seconds = Field(
        default=6 * 3600.0, ge=0, description="Longest `Retry-After` honoured on a 429 or 503."
    )
    retry_client_errors: bool = Field(
        default=True,
        description="Retry 4xx answers other than 408, 410, 425 and 429; `false` dead-letters them at once.",
    )
    dead_letter_retention: Seconds | None = Field(
        default=None,
        gt=0,
        description="How long dead letters are kept in `<prefix>.deliveries.dead` (a per-message TTL, "
        "so it applies to letters parked after it is set); unset keeps them forever.",
    )
    log_enabled: bool = Field(
        default=True,
        description="Record every event and attempt in the delivery log (published to "
        "`<prefix>.log`, written to the database by `hookline recorder`); `false` records nothing.",
    )
    log_database_url: str | None = Field(
        default=None,
        description="Database of the delivery log, in the form of `HOOKLINE_DATABASE_URL`; unset: the "
        "subscription store's database.",
    )
    log_retention: Seconds = Field(
        default=14 * 86400.0,
        ge=3600,
        description="How long the delivery log keeps events and attempts (on PostgreSQL, whole daily "
        "partitions are dropped once all they hold is older).",
    )
    log_payload_retention: Seconds | None = Field(
        default=None,
        ge=3600,
        description="How long the delivery log keeps event payloads, if shorter than "
        "`HOOKLINE_LOG_RETENTION` (older events keep their metadata, without the payload); unset: as "
        "long as the rest.",
    )
    # Disable a subscription failing continuously this long (Svix: 5 days); 0 never does.
    auto_disable_after: Seconds = Field(
        default=5 * 86400.0,
        ge=0,
        description="Disable a subscription whose deliveries have failed continuously this long; `0` "
        "never does (410 Gone still disables).",
    )
    # Metrics and probes of `hookline worker` (see workers/ops/server.py); port 0 serves nothing.
    metrics_port: int = Field(
        default=9191,
        ge=0,
        le=65535,
        description="Port of `hookline worker`'s `/metrics`, `/healthz` and `/readyz`; `0` serves nothing.",
    )
    metrics_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - a pod's scrape address
        min_length=1,
        max_length=255,
        description="Address the `/metrics`, `/healthz` and `/readyz` server listens on.",
    )
    metrics_dir: DirectoryPath | None = Field(
        default=None,
        description="Existing, writable directory in which `hookline worker` creates its fresh "
        "multiprocess-metrics directory, removed when it stops; unset: the system's temp directory.",
    )
    metrics_event_types_max: int = Field(
        default=50,
        ge=0,
        le=10_000,
        description="Distinct event types each worker process labels `hookline_events_received_total` "
        "with; later ones count as `other`, `0` never labels.",
    )
    metrics_per_subscription: bool = Field(
        default=False,
        description="`true` adds a `subscription_id` label to `hookline_deliveries_total` and "
        "`hookline_delivery_latency_seconds`: up to 29 series per subscription per pod.",
    )
    api_host: str = Field(
        default="0.0.0.0",  # noqa: S104 - a pod's service address
        min_length=1,
        max_length=255,
        description="Address `hookline api` listens on.",
    )
    api_port: int = Field(
        default=8080, ge=1, le=65535, description="Port of `hookline api`: the REST API and its probes."
    )
    api_metrics_port: int = Field(
        default=9192,
        ge=0,
        le=65535,
        description="Port of `hookline api`'s `/metrics`, apart from the API so that scraping needs no API "
        "key (same address as `HOOKLINE_API_HOST`); `0` serves nothing.",
    )
    api_max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        le=128 * 1024 * 1024,
        description="Largest request body `hookline api` reads; a larger one is answered 413 before it is "
        "read. Keep it above `HOOKLINE_MAX_EVENT_BYTES`, or large events cannot be published over HTTP.",
    )
    api_idempotency_retention: Seconds = Field(
        default=86400.0,
        ge=60,
        le=30 * 86400,
        description="How long `hookline api` remembers an `Idempotency-Key` and the answer it gave, so that "
        "a request retried within it is answered again instead of done twice.",
    )
    broker_max_message_bytes: int = Field(
        default=DEFAULT_BROKER_MAX_MESSAGE_BYTES,
        ge=1024 * 1024,
        le=512 * 1024 * 1024,
        description="The broker's `max_message_size` (RabbitMQ's default: 128 MiB). Checked at start "
        "against `HOOKLINE_MAX_EVENT_BYTES`: a delivery of the largest event, escaped as JSON, must fit.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`, in any case."
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="`json`, `console`, or `auto` (console on a terminal, JSON otherwise)."
    )

    @field_validator("broker_max_message_bytes")
    @classmethod
    def _largest_event_fits_in_a_message(cls, value: int, info: ValidationInfo) -> int:
        # A delivery carries the webhook body as a JSON string in a dramatiq message: escaping can
        # make it three times its bytes (an emoji's four bytes become a twelve-byte surrogate pair).
        largest = info.data.get("max_event_bytes")
        if largest is not None and largest * ENCODED_GROWTH + MESSAGE_ENVELOPE_BYTES > value:
            raise ValueError(
                f"the broker's limit must hold a delivery of the largest event: HOOKLINE_MAX_EVENT_BYTES "
                f"({largest}) can encode to {largest * ENCODED_GROWTH} bytes; lower it, or raise both "
                "the broker's max_message_size and this"
            )
        return value

    @field_validator("database_url", "log_database_url")
    @classmethod
    def _database_url_names_a_supported_database(cls, value: str | None) -> str | None:
        # Never echo the value: it may carry a password.
        if value is not None and not value.startswith(
            ("sqlite://", "postgresql://", "postgresql+psycopg://")
        ):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle_holds_certificates(cls, value: FilePath | None) -> FilePath | None:
        # Checked here so that a bad bundle stops the process at start, not on the first delivery.
        if value is not None:
            try:
                ssl.create_default_context(cafile=value)
            except (ssl.SSLError, OSError) as exc:
                raise ValueError("not a readable PEM bundle of CA certificates") from exc
        return value

    @field_validator("retry_schedule")
    @classmethod
    def _schedule_is_bounded(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if len(value) > 50 or any(delay < 0 or delay > 7 * 86400 for delay in value):
            raise ValueError("at most 50 delays, each between 0 and 7d")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_is_case_insensitive(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def log_database(self) -> str:
        """The delivery log's database URL: its own, or the subscription store's."""
        return self.log_database_url or self.database_url
