"""What the API's routes work with, opened once per process: stores, the publisher, the queue reader.

:meth:`Services.open` makes no connection: the database and the broker are
reached on first use, so ``hookline api`` starts (and answers ``/healthz``)
while either is down or the database is not migrated yet; ``/readyz`` says so.
The delivery log shares the subscription store's engine unless
``HOOKLINE_LOG_DATABASE_URL`` names a database of its own; its schema is
checked on first use (:meth:`Services.migrated_log`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from workers.api.auth import Authenticator
from workers.api.idempotency import IdempotencyStore
from workers.api.keys import ApiKeyStore
from workers.api.publishing import EventPublisher
from workers.api.replayjobs import ReplayJobs
from workers.broker import changes
from workers.broker.topology import Topology
from workers.deliverylog.schema import ensure_log_migrated
from workers.deliverylog.store import LogStore
from workers.observability.logs import get_logger
from workers.ops.queue_stats import QueueReader
from workers.settings import Settings
from workers.subscriptions.db import create_engine
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore

log = get_logger(component="api")


@dataclass
class Services:
    settings: Settings
    engine: Engine
    subscriptions: SubscriptionStore
    keys: ApiKeyStore
    authenticator: Authenticator
    idempotency: IdempotencyStore
    publisher: EventPublisher
    queues: QueueReader
    log_engine: Engine
    log: LogStore
    replays: ReplayJobs
    log_checked: bool = False

    @classmethod
    def open(cls, settings: Settings) -> Services:
        """Everything the routes need; SecretsKeyError at once if HOOKLINE_SECRETS_KEY is missing."""
        box = SecretBox.from_settings(settings)
        engine = create_engine(settings.database_url)
        keys = ApiKeyStore(engine)
        retention = timedelta(seconds=settings.api_idempotency_retention)
        subscriptions = SubscriptionStore(engine, box)
        # One pool for both unless the log has a database of its own.
        log_engine = engine if settings.log_database_url is None else create_engine(settings.log_database)
        log_store = LogStore(
            log_engine, retention=settings.log_retention, payload_retention=settings.log_payload_retention
        )
        return cls(
            settings=settings,
            engine=engine,
            subscriptions=subscriptions,
            keys=keys,
            authenticator=Authenticator(keys),
            idempotency=IdempotencyStore(engine, box, retention=retention),
            publisher=EventPublisher(settings),
            queues=QueueReader(settings.amqp_url, Topology.from_settings(settings)),
            log_engine=log_engine,
            log=log_store,
            replays=ReplayJobs(settings, subscriptions, log_store),
        )

    def migrated_log(self) -> LogStore:
        """The delivery log, once its schema was found migrated (DatabaseNotMigrated until then)."""
        if not self.log_checked:
            ensure_log_migrated(self.log_engine)
            self.log_checked = True
        return self.log

    def announce_change(self) -> None:
        """Tell the workers that subscriptions changed, as the CLI does; a failure is logged, not raised."""
        exchange = Topology.from_settings(self.settings).subscription_changes_exchange
        not_told = changes.announce(self.settings.amqp_url, exchange)
        if not_told is not None:
            seconds = self.settings.subscription_refresh_seconds
            log.warning("subscription_change_not_announced", reason=not_told, workers_reload_within=seconds)

    def close(self) -> None:
        self.replays.close()
        self.publisher.close()
        self.queues.close()
        if self.log_engine is not self.engine:
            self.log_engine.dispose()
        self.engine.dispose()
