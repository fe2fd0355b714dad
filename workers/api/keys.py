"""API keys: created with a name, shown once, stored hashed, revoked for good.

A key is ``hk_`` and 43 characters of URL-safe base64: 256 random bits. Only
its SHA-256 hash is stored, with its first :data:`PREFIX_LENGTH` characters so
that an operator can tell which key a leaked token is. A plain, fast hash is
enough here, unlike for passwords: a slow one (bcrypt, argon2) protects secrets
people choose, which are few enough to guess; 256 random bits cannot be
guessed, however fast each try, and a fast hash lets a request's key be looked
up by its hash with one indexed query.

``last_used_at`` tells an operator which keys are still in use; it is written
at most once a minute per key and API process (:meth:`ApiKeyStore.touch` is
a conditional UPDATE), never once per request.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from workers.api.tables import api_keys_table, transaction
from workers.errors import ApiKeyNotFound, InvalidApiKeyName
from workers.subscriptions.db import UTCDateTime

TOKEN_PREFIX = "hk_"  # noqa: S105 - what every key starts with, not a key
TOKEN_BYTES = 32
PREFIX_LENGTH = len(TOKEN_PREFIX) + 8  # what `hookline api-keys list` shows of a key
MAX_TOKEN_LENGTH = 200  # a longer bearer token is not one of ours: no query is made for it
ID_PREFIX = "key_"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_ID_LENGTH = 20
MAX_NAME_LENGTH = 100
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored: never the key itself."""

    id: str
    name: str
    prefix: str
    read_only: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "prefix": self.prefix,
            "read_only": self.read_only,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created: ``token`` is the key itself, shown this once and stored nowhere."""

    key: ApiKey
    token: str = field(repr=False)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ApiKeyStore:
    """API keys in the database behind ``engine``; failures surface as StoreError."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = _utcnow) -> None:
        self._engine = engine
        self._clock = clock

    def create(self, name: str, *, read_only: bool = False) -> NewApiKey:
        token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        key = ApiKey(
            id=ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH)),
            name=validate_name(name),
            prefix=token[:PREFIX_LENGTH],
            read_only=read_only,
            created_at=self._now(),
            last_used_at=None,
            revoked_at=None,
        )
        row = {**key.to_record(), "token_hash": hash_token(token)}
        with transaction(self._engine) as connection:
            connection.execute(sa.insert(api_keys_table).values(**row))
        return NewApiKey(key, token)

    def list(self) -> builtins.list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        table = api_keys_table
        query = sa.select(*_COLUMNS).order_by(table.c.created_at, table.c.id)
        with transaction(self._engine) as connection:
            return [_from_row(row) for row in connection.execute(query).mappings()]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke for good; revoking a revoked key keeps the time it was first revoked."""
        table = api_keys_table
        statement = (
            sa.update(table)
            .where(table.c.id == key_id)
            .values(revoked_at=sa.func.coalesce(table.c.revoked_at, sa.literal(self._now(), UTCDateTime())))
            .returning(*_COLUMNS)
        )
        with transaction(self._engine) as connection:
            row = connection.execute(statement).mappings().first()
        if row is None:
            raise ApiKeyNotFound(f"no API key with id {key_id[:100]!r}")
        return _from_row(row)

    def verify(self, token: str) -> ApiKey | None:
        """The active key ``token`` is, or None (unknown, revoked, or not shaped like a key)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
            return None
        table = api_keys_table
        query = sa.select(*_COLUMNS).where(
            table.c.token_hash == hash_token(token), table.c.revoked_at.is_(None)
        )
        with transaction(self._engine) as connection:
            row = connection.execute(query).mappings().first()
        return None if row is None else _from_row(row)

    def touch(self, key_id: str) -> None:
        """Record a use now, unless one was recorded less than :data:`TOUCH_INTERVAL` ago."""
        table, now = api_keys_table, self._now()
        statement = (
            sa.update(table)
            .where(
                table.c.id == key_id,
                sa.or_(table.c.last_used_at.is_(None), table.c.last_used_at < now - TOUCH_INTERVAL),
            )
            .values(last_used_at=now)
        )
        with transaction(self._engine) as connection:
            connection.execute(statement)

    def _now(self) -> datetime:
        return self._clock().astimezone(UTC)


_COLUMNS = tuple(column for column in api_keys_table.c if column.name != "token_hash")


def validate_name(name: str) -> str:
    """A name of 1 to :data:`MAX_NAME_LENGTH` printable characters, to tell keys apart."""
    if not name.strip() or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidApiKeyName(f"an API key's name must be 1 to {MAX_NAME_LENGTH} printable characters")
    return name


def _from_row(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        read_only=bool(row["read_only"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )
