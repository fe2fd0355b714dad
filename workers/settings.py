"""Worker and operator settings: every ``HOOKLINE_*`` variable, with its default.

The README's configuration table lists the same fields; keep them in step.
"""

from __future__ import annotations

import ssl
from ipaddress import IPv4Network, IPv6Network, ip_network
from typing import Annotated, Literal

from pydantic import BeforeValidator, DirectoryPath, Field, FilePath, field_validator
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


def _network(text: str) -> IPv4Network | IPv6Network:
    try:
        return ip_network(text)
    except ValueError as exc:
        # ipaddress says what is wrong ("has host bits set", "does not appear to be..."): keep it.
        raise ValueError(f"not a CIDR network: {exc}") from exc


# A duration: a number of seconds, or text such as "5s", "5m", "2h", "3d".
Seconds = Annotated[float, BeforeValidator(_seconds)]
# The waits before each retry, comma-separated in the environment ("5s,5m,30m").
Schedule = Annotated[tuple[float, ...], NoDecode, BeforeValidator(_schedule)]
# CIDR networks, comma-separated in the environment ("10.20.0.0/16,127.0.0.1/32").
Networks = Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode, BeforeValidator(_networks)]

DEFAULT_MAX_RESPONSE_BYTES = 4096

# Svix's and the Standard Webhooks schedule after the first attempt: about 27.5 hours in all.
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)


class Settings(ProducerSettings):
    """Everything a worker or an operator command reads from the environment."""

    database_url: str = "sqlite:///hookline.db"
    queue_prefix: str = Field(default="hookline", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    http_connect_timeout: float = Field(default=5.0, gt=0, le=120)
    http_timeout: float = Field(default=15.0, gt=0, le=300)
    subscription_refresh_seconds: float = Field(default=2.0, gt=0, le=300)
    secret_rotation_grace_seconds: int = Field(default=24 * 3600, ge=0)
    endpoint_max_in_flight: int = Field(default=4, ge=1, le=1000)
    # How long a delivery waits for a slot at an endpoint at its cap before it is sent back to RabbitMQ:
    # at most the shortest wait in the broker (1 s), which would cost a round trip on top.
    endpoint_busy_wait: Seconds = Field(default=1.0, ge=0, le=10)
    # Per process: spare threads for first attempts of events with several subscriptions.
    fan_out_concurrency: int = Field(default=4, ge=1, le=1000)
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    breaker_cooldown: Seconds = Field(default=30.0, gt=0, le=3600)
    allow_private_networks: bool = False
    allowed_networks: Networks = ()
    ca_bundle: FilePath | None = None
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=0, le=1024 * 1024)
    retry_schedule: Schedule = DEFAULT_RETRY_SCHEDULE
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    retry_max_age: Seconds = Field(default=3 * 86400.0, gt=0)
    retry_after_max: Seconds = Field(default=6 * 3600.0, ge=0)
    retry_client_errors: bool = True
    dead_letter_retention: Seconds | None = Field(default=None, gt=0)
    # Disable a subscription failing continuously this long (Svix: 5 days); 0 never does.
    auto_disable_after: Seconds = Field(default=5 * 86400.0, ge=0)
    # Metrics and probes of `hookline worker` (see workers/exporter.py); port 0 serves nothing.
    metrics_port: int = Field(default=9191, ge=0, le=65535)
    metrics_host: str = Field(default="0.0.0.0", min_length=1, max_length=255)  # noqa: S104 - a pod's scrape address
    metrics_dir: DirectoryPath | None = None
    metrics_event_types_max: int = Field(default=50, ge=0, le=10_000)
    metrics_per_subscription: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("database_url")
    @classmethod
    def _database_url_names_a_supported_database(cls, value: str) -> str:
        # Never echo the value: it may carry a password.
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
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
