"""Settings shared by publishers and workers, read from ``HOOKLINE_*`` variables.

A wrong setting must stop a process at start with one line that names the
variable, so :func:`load` turns pydantic's multi-line report into a
:class:`~producer.errors.ConfigurationError`.
"""

from __future__ import annotations

from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.errors import ConfigurationError

ENV_PREFIX = "HOOKLINE_"


class ProducerSettings(BaseSettings):
    """What a publishing service needs: where the broker is and which exchange to use."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    amqp_url: str = Field(
        default="amqp://guest:guest@localhost:5672/%2F",
        description="RabbitMQ connection URL (`amqp://` or `amqps://`).",
    )
    exchange: str = Field(
        default="hookline.events",
        min_length=1,
        max_length=255,
        description="Topic exchange events are published to.",
    )
    max_event_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest event accepted, in bytes of JSON (1 KiB to 64 MiB). A larger one is refused "
        "at publish and parked as invalid at fan-out.",
    )

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url_is_an_amqp_url(cls, value: str) -> str:
        # The message never repeats the value: it may hold a password.
        parts = urlsplit(value)
        if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
            raise ValueError("must be an amqp:// or amqps:// URL with a host")
        return value


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S]) -> S:
    """Read settings of type ``cls`` from the environment, or raise one clear error."""
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigurationError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line naming every bad variable; input values are left out because they may be secrets."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "invalid setting " + "; ".join(problems)


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
