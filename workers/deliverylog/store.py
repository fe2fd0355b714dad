"""The delivery log's store: one object to write records, query them, and forget old ones.

``LogStore`` wraps an engine on the log's database (``HOOKLINE_LOG_DATABASE_URL``,
or the subscription store's) and runs each call in one transaction: the
writing is :mod:`~workers.deliverylog.writer`'s, the reading
:mod:`~workers.deliverylog.queries`' and the forgetting
:mod:`~workers.deliverylog.retention`'s. Database failures surface as
LogStoreError, naming the database without its password.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from workers.deliverylog import queries, retention
from workers.deliverylog.queries import DeliveryHistory, DeliveryPage, EventHistory, ReplayCandidate
from workers.deliverylog.records import DeliveryState, Record
from workers.deliverylog.retention import RetentionReport
from workers.deliverylog.schema import ensure_log_migrated
from workers.deliverylog.writer import Writer, WriteReport
from workers.errors import LogStoreError
from workers.settings import Settings
from workers.subscriptions.db import create_engine, describe_error, mask_url

DEFAULT_RETENTION = 14 * 86400.0
# PostgreSQL's SQLSTATE when a row falls in no partition: one was dropped under a writer's feet.
_NO_PARTITION = "23514"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LogStore:
    """The delivery log in the database behind ``engine`` (migrated: see :func:`open_log_store`).

    ``retention`` and ``payload_retention`` are seconds, as the settings give
    them; what is older is not written, and :meth:`enforce_retention` forgets it.
    A store made by :func:`open_log_store` owns its engine: close it, or use it
    as a context manager.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        retention: float = DEFAULT_RETENTION,
        payload_retention: float | None = None,
        clock: Callable[[], datetime] = _utcnow,
        owns_engine: bool = False,
    ) -> None:
        self._engine = engine
        self._retention = timedelta(seconds=retention)
        self._payload_retention = None if payload_retention is None else timedelta(seconds=payload_retention)
        self._clock = clock
        self._owns_engine = owns_engine
        self._writer = Writer(engine.dialect.name)

    @classmethod
    def open(cls, settings: Settings) -> LogStore:
        """A store on ``settings.log_database``, after checking its schema is migrated."""
        return open_log_store(settings)

    @property
    def database(self) -> str:
        """The log's database URL, password masked: safe to print."""
        return mask_url(self._engine.url)

    def write(self, records: Sequence[Record]) -> WriteReport:
        """Write a batch in one transaction, each record once, states only forward (see ``writer``)."""
        now = self._clock()
        keep_since = now - self._retention
        try:
            with self._transaction() as connection:
                return self._writer.write(connection, records, keep_since=keep_since, now=now)
        except LogStoreError as exc:
            if _sqlstate(exc) != _NO_PARTITION:
                raise
        # Retention, in another process, dropped a day this writer thought it had: once more, afresh.
        self._writer.forget_partitions()
        with self._transaction() as connection:
            return self._writer.write(connection, records, keep_since=keep_since, now=now)

    def event(self, event_id: str) -> EventHistory:
        """An event with its payload and every delivery with its attempts; LogEntryNotFound if unknown."""
        with self._transaction() as connection:
            return queries.event(connection, event_id)

    def delivery(self, delivery_id: str) -> DeliveryHistory:
        """A delivery with its attempts and its event; LogEntryNotFound if unknown."""
        with self._transaction() as connection:
            return queries.delivery(connection, delivery_id)

    def deliveries(
        self,
        *,
        subscription_id: str | None = None,
        event_type_pattern: str | None = None,
        state: DeliveryState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> DeliveryPage:
        """A page of deliveries newest first (received in [since, until)); ValueError for bad input."""
        with self._transaction() as connection:
            return queries.deliveries(
                connection,
                subscription_id=subscription_id,
                event_type_pattern=event_type_pattern,
                state=state,
                since=since,
                until=until,
                limit=limit,
                cursor=cursor,
            )

    def states_since(self, since: datetime) -> dict[str, int]:
        """Deliveries of the events received since ``since``, counted by state."""
        with self._transaction() as connection:
            return queries.states_since(connection, since)

    def refused_by_open_breakers(self, since: datetime, *, limit: int = 20) -> list[queries.BreakerRefusals]:
        """Subscriptions whose deliveries an open circuit breaker refused last, since ``since``."""
        with self._transaction() as connection:
            return queries.refused_by_open_breakers(connection, since, limit=limit)

    def progress(self) -> queries.WriterProgress:
        """When the recorders last wrote a batch, and how far behind they were then."""
        with self._transaction() as connection:
            return queries.writer_progress(connection)

    def replay_candidates(
        self,
        subscription_id: str,
        since: datetime,
        until: datetime | None = None,
        states: Collection[DeliveryState] | None = None,
    ) -> list[ReplayCandidate]:
        """Per event of the subscription received in [since, until), its latest run's delivery.

        Only deliveries in ``states`` (None: any), oldest event first. Read in
        chunks, each its own short transaction.
        """
        return list(self.iter_replay_candidates(subscription_id, since, until, states))

    def iter_replay_candidates(
        self,
        subscription_id: str,
        since: datetime,
        until: datetime | None = None,
        states: Collection[DeliveryState] | None = None,
    ) -> Iterator[ReplayCandidate]:
        """:meth:`replay_candidates` one chunk at a time, for a range too large to hold at once."""
        after: tuple[datetime, str] | None = None
        while True:
            with self._transaction() as connection:
                found, after = queries.replay_candidates(
                    connection, subscription_id, since, until, states, after=after, chunk=queries.REPLAY_CHUNK
                )
            yield from found
            if after is None:
                return

    def enforce_retention(self, now: datetime | None = None) -> RetentionReport:
        """Forget what is older than the retentions (see ``retention``); what was dropped or deleted."""
        moment = self._clock() if now is None else now
        with self._transaction() as connection:
            report = retention.enforce(connection, moment, self._retention, self._payload_retention)
        if report.dropped_partitions:
            self._writer.forget_partitions()
        return report

    def close(self) -> None:
        """Dispose of the engine, if this store made it."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> LogStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        try:
            with self._engine.begin() as connection:
                yield connection
        except sa.exc.DBAPIError as exc:
            raise LogStoreError(f"delivery log at {self.database}: {describe_error(exc)}") from exc


def open_log_store(settings: Settings) -> LogStore:
    """A store on the log's database with the configured retentions; DatabaseNotMigrated if not set up."""
    engine = create_engine(settings.log_database)
    try:
        ensure_log_migrated(engine)
    except BaseException:
        engine.dispose()
        raise
    return LogStore(
        engine,
        retention=settings.log_retention,
        payload_retention=settings.log_payload_retention,
        owns_engine=True,
    )


def _sqlstate(exc: LogStoreError) -> str | None:
    original = getattr(exc.__cause__, "orig", None)
    return getattr(original, "sqlstate", None)
