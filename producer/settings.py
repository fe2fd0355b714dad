"""Settings shared by publishers and workers, read from ``HOOKLINE_*`` variables.

A wrong setting must stop a process at start with one line that names the
variable, so :func:`load` turns pydantic's multi-line report into a
:class:`~producer.errors.ConfigurationError`.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from producer.errors import ConfigurationError

ENV_PREFIX = "HOOKLINE_"
# How alike (difflib's ratio) a variable must be to a setting to count as its misspelling: catches
# a swapped or missing letter (AMQP_ULR, RETRY_SHEDULE), not a different name (TEST_AMQP_URL).
_CLOSE_ENOUGH = 0.8


class ProducerSettings(BaseSettings):
    """What a publishing service needs: where the broker is and which exchange to use."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    amqp_url: str = Field(
        default="amqp://guest:guest@localhost:5672/%2F",
        description="RabbitMQ connection URL (`amqp://` or `amqps://`), or the URLs of a cluster's nodes "
        "separated by commas (`amqp://u:p@rabbit-1/%2F,amqp://u:p@rabbit-2/%2F`): each connection tries "
        "them in turn, and one that is lost moves on to the next node. Percent-encode a comma in a "
        "password (`%2C`).",
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
        # The message never repeats the value, nor any part of it: it may hold a password.
        urls = node_urls(value)
        for position, url in enumerate(urls, start=1):
            parts = urlsplit(url)
            if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
                which = f"URL {position} of {len(urls)} " if len(urls) > 1 else ""
                raise ValueError(f"{which}must be an amqp:// or amqps:// URL with a host")
        if not urls:
            raise ValueError("must be an amqp:// or amqps:// URL with a host")
        return value


S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S]) -> S:
    """Read settings of type ``cls`` from the environment, or raise one clear error."""
    misspelt = misspelt_variables(os.environ)
    if misspelt:
        raise ConfigurationError("unknown setting " + "; ".join(misspelt))
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigurationError(describe(exc)) from None


def misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """``HOOKLINE_*`` variables that are no setting but close to one, each with the one it resembles.

    A misspelt variable would otherwise be ignored, and its setting silently
    keep its default. Known are the fields of every settings class loaded in
    this process (a publisher knows only its own; the workers know them all);
    a variable resembling none (``HOOKLINE_TEST_*``, say) is left alone.
    """
    known = {name for family in _settings_classes() for name in family.model_fields}
    found = []
    for variable in sorted(environ):
        name = variable.removeprefix(ENV_PREFIX).lower()
        if not variable.startswith(ENV_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=_CLOSE_ENOUGH)
        if close:
            found.append(f"{variable}: did you mean {ENV_PREFIX}{close[0].upper()}?")
    return found


def _settings_classes() -> list[type[BaseSettings]]:
    family: list[type[BaseSettings]] = [ProducerSettings]
    for cls in family:
        family.extend(cls.__subclasses__())
    return family


def describe(exc: ValidationError) -> str:
    """One line naming every bad variable; input values are left out because they may be secrets."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{name}: {message}")
    return "invalid setting " + "; ".join(problems)


def node_urls(amqp_url: str) -> list[str]:
    """The URLs in ``HOOKLINE_AMQP_URL``, one per broker node, in the order given."""
    return [url.strip() for url in amqp_url.split(",") if url.strip()]


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe for logs and error messages.

    A comma-separated list of URLs (the nodes of ``HOOKLINE_AMQP_URL``) comes back
    with each one's password replaced. Text with commas that is not such a list
    (a database URL naming several hosts) is one URL, its one password replaced.
    """
    several = node_urls(url)
    if len(several) > 1 and all("://" in each for each in several):
        return ",".join(_redacted(each) for each in several)
    return _redacted(url)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return parts._replace(netloc=f"{user}:***@{netloc}").geturl()
