"""Subscriptions: where to POST which events, signed with which secret.

The store validates everything before writing anything, and every write is a
single SQL statement, so concurrent writers (several CLI calls, several worker
processes sharing a SQLite file) never interleave half-done changes.

Secrets are stored encrypted (:mod:`workers.subscriptions.secretbox`, with
``HOOKLINE_SECRETS_KEY``): the store encrypts them as it writes and decrypts
them as it reads, so a :class:`Subscription` holds them in plaintext and the
database never does. :meth:`SubscriptionStore.load_all` decrypts only the
secrets that changed since its last call, so the workers' cache, which calls it
every few seconds, rarely decrypts anything.

Secret rotation keeps one previous secret: the new one becomes current at
once, the old one stays valid until ``previous_secret_expires_at``, and while
both are active the workers sign every webhook with both.

Auto-disable: the workers record when a subscription starts failing
(``failing_since``) and disable it once it has failed for
``HOOKLINE_AUTO_DISABLE_AFTER``, or at once on 410 Gone. These bookkeeping
writes are conditional single UPDATEs, so many worker processes can race on
them and exactly one wins each transition; they leave ``updated_at`` alone,
which keeps meaning "last changed by a person". The workers' cache still sees
them, because it compares whole rows.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from workers.errors import InvalidSubscription, StoreError, SubscriptionNotFound
from workers.outbound.signing import generate_secret, secret_key
from workers.subscriptions.db import UTCDateTime, describe_error, mask_url
from workers.subscriptions.patterns import validate_pattern
from workers.subscriptions.secretbox import SecretBox

ID_PREFIX = "sub_"
_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # lowercase base32
_ID_LENGTH = 20
MAX_URL_LENGTH = 2048
MAX_DESCRIPTION_LENGTH = 1000
MASKED_SECRET = "whsec_…"  # noqa: S105 - the placeholder printed instead of a secret

# Why a subscription is disabled (``disabled_reason``).
DISABLED_FAILING = "failing"  # failed continuously for HOOKLINE_AUTO_DISABLE_AFTER
DISABLED_GONE = "gone"  # the receiver answered 410 Gone
DISABLED_MANUAL = "manual"  # `hookline subscriptions disable`
# What count_by_state() counts: enabled and not failing, enabled but failing, and disabled by reason.
STATES = ("healthy", "failing", "disabled_failing", "disabled_gone", "disabled_manual")

metadata = sa.MetaData()


class Opener(Protocol):
    """Turns a stored secret into the secret (``SecretBox.open``, or a memo in front of it)."""

    def __call__(self, stored: str, *, owner: str) -> str: ...


# Mirrors migrations 0001 to 0003; tests/integration/test_migrations.py checks they agree.
# The secret columns hold what SecretBox.seal made of a secret, never the secret itself.
subscriptions_table = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("id", sa.Text(), primary_key=True),
    sa.Column("url", sa.Text(), nullable=False),
    sa.Column("event_patterns", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
    sa.Column("encrypted_secret", sa.Text(), nullable=False),
    sa.Column("encrypted_previous_secret", sa.Text(), nullable=True),
    sa.Column("previous_secret_expires_at", UTCDateTime(), nullable=True),
    sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("description", sa.Text(), nullable=False, server_default=""),
    sa.Column("created_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UTCDateTime(), nullable=False, server_default=sa.func.now()),
    sa.Column("failing_since", UTCDateTime(), nullable=True),
    sa.Column("disabled_reason", sa.Text(), nullable=True),
    sa.Column("disabled_at", UTCDateTime(), nullable=True),
)


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription as stored. Its repr leaves the secrets out, so logging one is safe.

    ``failing_since`` is when the current run of failures began (None while
    healthy); ``disabled_reason`` is one of the ``DISABLED_*`` reasons, set with
    ``disabled_at`` when the subscription was disabled and cleared on enable.
    """

    id: str
    url: str
    event_patterns: tuple[str, ...]
    secret: str = field(repr=False)
    previous_secret: str | None = field(repr=False)
    previous_secret_expires_at: datetime | None
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = None
    disabled_reason: str | None = None
    disabled_at: datetime | None = None

    def active_secrets(self, now: datetime) -> tuple[str, ...]:
        """The secrets to sign with at ``now``: the current one, then the previous one until it expires."""
        if self.is_rotating(now):
            assert self.previous_secret is not None  # noqa: S101 - is_rotating checked it; narrows for mypy
            return (self.secret, self.previous_secret)
        return (self.secret,)

    def is_rotating(self, now: datetime) -> bool:
        """Whether the previous secret is still valid at ``now``."""
        expires_at = self.previous_secret_expires_at
        return self.previous_secret is not None and expires_at is not None and now < expires_at

    def to_record(self, *, show_secret: bool, now: datetime | None = None) -> dict[str, Any]:
        """The fields as a plain dict for printing; secrets are masked unless ``show_secret``."""
        rotating = self.is_rotating(now or datetime.now(UTC))
        return {
            "id": self.id,
            "url": self.url,
            "event_patterns": list(self.event_patterns),
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "disabled_at": self.disabled_at,
            "failing_since": self.failing_since,
            "description": self.description,
            "secret": self.secret if show_secret else MASKED_SECRET,
            "previous_secret": _shown(self.previous_secret, show_secret) if rotating else None,
            "previous_secret_expires_at": self.previous_secret_expires_at if rotating else None,
            "rotating": rotating,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def _shown(secret: str | None, show_secret: bool) -> str | None:
    if secret is None or show_secret:
        return secret
    return MASKED_SECRET


def validate_url(url: str) -> str:
    """Return ``url`` if it is an http(s) URL with a host and no credentials; raise InvalidSubscription."""
    # Messages never repeat the URL: its query string may carry a token.
    if len(url) > MAX_URL_LENGTH:
        raise InvalidSubscription(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(char.isspace() or not char.isprintable() for char in url):
        raise InvalidSubscription("URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - evaluated for its ValueError on a malformed port
    except ValueError as exc:
        raise InvalidSubscription(f"URL is malformed: {exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidSubscription("URL must start with http:// or https://")
    if "@" in parts.netloc:
        raise InvalidSubscription(
            "URL must not contain credentials (user:password@): receivers verify the signature instead"
        )
    if not parts.hostname:
        raise InvalidSubscription("URL must name a host")
    return url


def validate_patterns(patterns: Sequence[str]) -> tuple[str, ...]:
    """The valid patterns with duplicates removed, first occurrence kept; at least one is required."""
    if isinstance(patterns, str):
        raise InvalidSubscription("event patterns must be a list of patterns, not one string")
    unique = tuple(dict.fromkeys(validate_pattern(pattern) for pattern in patterns))
    if not unique:
        raise InvalidSubscription("a subscription needs at least one event pattern")
    return unique


def validate_secret(secret: str) -> str:
    secret_key(secret)
    return secret


def validate_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise InvalidSubscription(f"description is longer than {MAX_DESCRIPTION_LENGTH} characters")
    return description


def new_subscription_id() -> str:
    return ID_PREFIX + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ResealReport:
    """What :meth:`SubscriptionStore.reseal_secrets` found and did."""

    subscriptions: int  # how many there are
    resealed: int  # how many had a secret encrypted afresh with the newest key


class SubscriptionStore:
    """Subscriptions in the database behind ``engine`` (SQLAlchemy Core, no ORM).

    Methods assume the schema is current; callers check once with
    :func:`workers.subscriptions.migrating.ensure_migrated`. Database failures surface as StoreError.
    ``secrets`` encrypts and decrypts the signing secrets; a store made without
    it can only count subscriptions and keep the workers' failure records
    (``hookline status``, the metrics exporter), and raises on anything that
    reads or writes a secret.
    """

    def __init__(
        self, engine: Engine, secrets: SecretBox | None = None, *, clock: Callable[[], datetime] = _utcnow
    ) -> None:
        self._engine = engine
        self._secrets = secrets
        self._clock = clock
        # What load_all() decrypted last time, by stored value: reused while a secret is unchanged.
        self._opened: Mapping[str, str] = {}

    def add(
        self,
        url: str,
        event_patterns: Sequence[str],
        *,
        secret: str | None = None,
        description: str = "",
    ) -> Subscription:
        """Create an enabled subscription; its secret is generated unless given."""
        now = self._now()
        subscription = Subscription(
            id=new_subscription_id(),
            url=validate_url(url),
            event_patterns=validate_patterns(event_patterns),
            secret=generate_secret() if secret is None else validate_secret(secret),
            previous_secret=None,
            previous_secret_expires_at=None,
            enabled=True,
            description=validate_description(description),
            created_at=now,
            updated_at=now,
        )
        values = _row_values(subscription, self._box())
        with self._transaction() as connection:
            connection.execute(sa.insert(subscriptions_table).values(**values))
        return subscription

    def get(self, subscription_id: str) -> Subscription:
        query = sa.select(subscriptions_table).where(subscriptions_table.c.id == subscription_id)
        with self._transaction() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            raise _not_found(subscription_id)
        return _from_row(row, self._box().open)

    def list(self, *, enabled: bool | None = None) -> builtins.list[Subscription]:
        """Subscriptions oldest first, optionally only the enabled or the disabled ones."""
        query = sa.select(subscriptions_table)
        if enabled is not None:
            query = query.where(subscriptions_table.c.enabled == enabled)
        return self._select_all(query)

    def load_all(self) -> builtins.list[Subscription]:
        """Every subscription, in one SELECT: the workers' cache calls this every few seconds.

        A secret stored as it was at the previous call is not decrypted again:
        only new, rotated and re-encrypted ones cost a decryption.
        """
        box, known = self._box(), self._opened
        opened: dict[str, str] = {}

        def open_secret(stored: str, *, owner: str) -> str:
            secret = known.get(stored)
            opened[stored] = box.open(stored, owner=owner) if secret is None else secret
            return opened[stored]

        loaded = self._select_all(sa.select(subscriptions_table), open_secret)
        self._opened = opened  # only what is stored now: the memo never outgrows the table
        return loaded

    def reseal_secrets(self) -> ResealReport:
        """Encrypt with the newest key every stored secret it did not encrypt, plaintext ones included.

        ``hookline setup`` runs this after migrating; a second run finds nothing
        to do. Each row is rewritten only if its secrets are still those read, so
        a concurrent ``rotate-secret`` (which encrypts with the newest key itself)
        is never undone. Without a key (development mode) nothing is changed.
        """
        box, table = self._box(), subscriptions_table
        query = sa.select(table.c.id, table.c.encrypted_secret, table.c.encrypted_previous_secret)
        with self._transaction() as connection:
            rows = connection.execute(query).mappings().all()
            resealed = sum(_reseal_row(connection, box, row) for row in rows)
        return ResealReport(subscriptions=len(rows), resealed=resealed)

    def count_by_state(self) -> dict[str, int]:
        """How many subscriptions are in each of :data:`STATES`, in one grouped SELECT."""
        table = subscriptions_table
        failing = table.c.failing_since.is_not(None).label("failing")
        query = sa.select(table.c.enabled, table.c.disabled_reason, failing, sa.func.count()).group_by(
            table.c.enabled, table.c.disabled_reason, failing
        )
        counts = dict.fromkeys(STATES, 0)
        with self._transaction() as connection:
            for enabled, reason, is_failing, count in connection.execute(query):
                counts[_state(bool(enabled), reason, bool(is_failing))] += count
        return counts

    def update(
        self,
        subscription_id: str,
        *,
        url: str | None = None,
        event_patterns: Sequence[str] | None = None,
        description: str | None = None,
    ) -> Subscription:
        """Change what is given (URL, patterns, description); the id, secrets and state stay as they are.

        Everything is validated as :meth:`add` validates it, before anything is
        written; an update that gives nothing is refused.
        """
        values: dict[str, Any] = {}
        if url is not None:
            values["url"] = validate_url(url)
        if event_patterns is not None:
            values["event_patterns"] = list(validate_patterns(event_patterns))
        if description is not None:
            values["description"] = validate_description(description)
        if not values:
            raise InvalidSubscription("nothing to update: give a URL, event patterns or a description")
        return self._update(subscription_id, **values)

    def set_enabled(self, subscription_id: str, enabled: bool) -> Subscription:
        """Enable or disable at a person's request; ``updated_at`` moves either way.

        Enabling a disabled subscription clears its reason and its failure
        record, so the auto-disable clock starts afresh; enabling an enabled
        one leaves ``failing_since`` running. Disabling an enabled one records
        reason ``manual``; disabling a disabled one keeps the reason it has.
        """
        # CASE sees the row as it was before this UPDATE, as in rotate_secret.
        was_enabled = subscriptions_table.c.enabled
        if enabled:
            return self._update(
                subscription_id,
                enabled=True,
                failing_since=sa.case((was_enabled, subscriptions_table.c.failing_since), else_=sa.null()),
                disabled_reason=None,
                disabled_at=None,
            )
        return self._update(
            subscription_id,
            enabled=False,
            disabled_reason=sa.case(
                (was_enabled, sa.literal(DISABLED_MANUAL, sa.Text())),
                else_=subscriptions_table.c.disabled_reason,
            ),
            disabled_at=sa.case(
                (was_enabled, sa.literal(self._now(), UTCDateTime())),
                else_=subscriptions_table.c.disabled_at,
            ),
        )

    def mark_failing(self, subscription_id: str, now: datetime) -> None:
        """Record the first failure after a success: sets ``failing_since`` only where it is unset.

        Later calls, from this worker or any other, keep the earliest time. An
        unknown id is ignored: the subscription may just have been removed.
        """
        table = subscriptions_table
        self._bookkeep(subscription_id, table.c.failing_since.is_(None), failing_since=_aware(now))

    def mark_healthy(self, subscription_id: str) -> None:
        """Record a success after failures: clears ``failing_since`` where it is set."""
        table = subscriptions_table
        self._bookkeep(subscription_id, table.c.failing_since.is_not(None), failing_since=None)

    def disable_if_failing_since(self, subscription_id: str, before: datetime, now: datetime) -> bool:
        """Disable with reason ``failing`` if enabled and failing since ``before`` or earlier.

        True only for the one call that disabled it, so exactly one worker logs it.
        """
        table = subscriptions_table
        return self._bookkeep(
            subscription_id,
            table.c.enabled,
            table.c.failing_since <= _aware(before),
            **_disabled(DISABLED_FAILING, now),
        )

    def disable_gone(self, subscription_id: str, now: datetime) -> bool:
        """Disable with reason ``gone`` (the receiver answered 410) if enabled; True if this call did."""
        return self._bookkeep(subscription_id, subscriptions_table.c.enabled, **_disabled(DISABLED_GONE, now))

    def remove(self, subscription_id: str) -> None:
        statement = sa.delete(subscriptions_table).where(subscriptions_table.c.id == subscription_id)
        with self._transaction() as connection:
            deleted = connection.execute(statement).rowcount
        if deleted == 0:
            raise _not_found(subscription_id)

    def rotate_secret(
        self, subscription_id: str, *, new_secret: str | None = None, grace: timedelta
    ) -> Subscription:
        """Make a new secret current; the old one stays valid for ``grace`` (zero drops it at once).

        Only one previous secret is kept: rotating again during a grace period
        ends the older secret's validity immediately.
        """
        if grace < timedelta(0):
            raise InvalidSubscription("the grace period must not be negative")
        secret = generate_secret() if new_secret is None else validate_secret(new_secret)
        keep_old = grace > timedelta(0)
        # The right-hand sides see the row as it was, so the old secret moves in the same statement,
        # as it is stored: the box decrypts it with whichever key encrypted it.
        return self._update(
            subscription_id,
            encrypted_secret=self._box().seal(secret),
            encrypted_previous_secret=subscriptions_table.c.encrypted_secret if keep_old else None,
            previous_secret_expires_at=self._now() + grace if keep_old else None,
        )

    def _now(self) -> datetime:
        # Normalised here so that what add() returns equals what get() reads back.
        return self._clock().astimezone(UTC)

    def _box(self) -> SecretBox:
        if self._secrets is None:
            # A programming error, not a setting: the commands that need secrets pass a box.
            raise RuntimeError(
                "this SubscriptionStore has no SecretBox: pass secrets= to read or write secrets"
            )
        return self._secrets

    def _update(self, subscription_id: str, **values: Any) -> Subscription:
        statement = (
            sa.update(subscriptions_table)
            .where(subscriptions_table.c.id == subscription_id)
            .values(**values, updated_at=self._now())
            .returning(*subscriptions_table.c)
        )
        box = self._box()  # before writing: a store that cannot read the row back must not change it
        with self._transaction() as connection:
            row = connection.execute(statement).mappings().first()
        if row is None:
            raise _not_found(subscription_id)
        return _from_row(row, box.open)

    def _bookkeep(self, subscription_id: str, *conditions: sa.ColumnElement[bool], **values: Any) -> bool:
        """One conditional UPDATE that leaves ``updated_at`` alone; True if it changed the row."""
        statement = (
            sa.update(subscriptions_table)
            .where(subscriptions_table.c.id == subscription_id, *conditions)
            .values(**values)
        )
        with self._transaction() as connection:
            return connection.execute(statement).rowcount == 1

    def _select_all(
        self, query: sa.Select[Any], open_secret: Opener | None = None
    ) -> builtins.list[Subscription]:
        opener = open_secret or self._box().open
        query = query.order_by(subscriptions_table.c.created_at, subscriptions_table.c.id)
        with self._transaction() as connection:
            rows = connection.execute(query).mappings().all()
        return [_from_row(row, opener) for row in rows]

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except sa.exc.DBAPIError as exc:
            where = mask_url(self._engine.url)
            raise StoreError(f"subscription store at {where}: {describe_error(exc)}") from exc


def _state(enabled: bool, disabled_reason: str | None, failing: bool) -> str:
    if enabled:
        return "failing" if failing else "healthy"
    reason = disabled_reason if disabled_reason in (DISABLED_FAILING, DISABLED_GONE) else DISABLED_MANUAL
    return f"disabled_{reason}"


def _not_found(subscription_id: str) -> SubscriptionNotFound:
    return SubscriptionNotFound(f"no subscription with id {subscription_id[:100]!r}")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where a time zone is required")
    return moment.astimezone(UTC)


def _disabled(reason: str, now: datetime) -> dict[str, Any]:
    return {"enabled": False, "disabled_reason": reason, "disabled_at": _aware(now)}


def _row_values(subscription: Subscription, box: SecretBox) -> dict[str, Any]:
    previous = subscription.previous_secret
    return {
        "id": subscription.id,
        "url": subscription.url,
        "event_patterns": list(subscription.event_patterns),
        "encrypted_secret": box.seal(subscription.secret),
        "encrypted_previous_secret": None if previous is None else box.seal(previous),
        "previous_secret_expires_at": subscription.previous_secret_expires_at,
        "enabled": subscription.enabled,
        "description": subscription.description,
        "created_at": subscription.created_at,
        "updated_at": subscription.updated_at,
        "failing_since": subscription.failing_since,
        "disabled_reason": subscription.disabled_reason,
        "disabled_at": subscription.disabled_at,
    }


def _from_row(row: sa.RowMapping, open_secret: Opener) -> Subscription:
    owner = f"subscription {row['id']}"
    previous = row["encrypted_previous_secret"]
    return Subscription(
        id=row["id"],
        url=row["url"],
        event_patterns=tuple(row["event_patterns"]),
        secret=open_secret(row["encrypted_secret"], owner=owner),
        previous_secret=None if previous is None else open_secret(previous, owner=owner),
        previous_secret_expires_at=row["previous_secret_expires_at"],
        enabled=bool(row["enabled"]),
        description=row["description"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        failing_since=row["failing_since"],
        disabled_reason=row["disabled_reason"],
        disabled_at=row["disabled_at"],
    )


def _reseal_row(connection: Connection, box: SecretBox, row: sa.RowMapping) -> bool:
    """Re-encrypt the row's secrets that need it, if they are still as read; True if it was rewritten."""
    table, owner = subscriptions_table, f"subscription {row['id']}"
    stored = {column: row[column] for column in ("encrypted_secret", "encrypted_previous_secret")}
    values = {
        column: box.reseal(value, owner=owner)
        for column, value in stored.items()
        if value is not None and not box.is_sealed_with_newest(value)
    }
    if not values:
        return False
    unchanged = [table.c[column].is_not_distinct_from(value) for column, value in stored.items()]
    statement = sa.update(table).where(table.c.id == row["id"], *unchanged).values(**values)
    return bool(connection.execute(statement).rowcount == 1)
