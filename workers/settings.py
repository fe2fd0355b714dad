"""Worker and operator settings: every ``HOOKLINE_*`` variable, with its default.

The README's configuration table lists the same fields; keep them in step.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from producer.settings import ProducerSettings


class Settings(ProducerSettings):
    """Everything a worker or an operator command reads from the environment."""

    database_url: str = "sqlite:///hookline.db"
    queue_prefix: str = Field(default="hookline", pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    http_connect_timeout: float = Field(default=5.0, gt=0, le=120)
    http_timeout: float = Field(default=15.0, gt=0, le=300)
    subscription_refresh_seconds: float = Field(default=2.0, gt=0, le=300)
    secret_rotation_grace_seconds: int = Field(default=24 * 3600, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"

    @field_validator("database_url")
    @classmethod
    def _database_url_names_a_supported_database(cls, value: str) -> str:
        # Never echo the value: it may carry a password.
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level_is_case_insensitive(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value
