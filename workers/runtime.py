"""Per-process state shared by the actors: settings, subscription cache, HTTP client, threads.

Built in each worker process after it forked (the dramatiq CLI imports the
broker module in every child), so no connection, pool or thread crosses a fork.
"""

from __future__ import annotations

import threading
from functools import cached_property

from workers.broker import delaybatch
from workers.broker.delaybatch import DelayBatcher
from workers.broker.topology import Topology
from workers.outbound import http
from workers.pipeline.sparethreads import SpareThreads
from workers.settings import Settings
from workers.subscriptions import db
from workers.subscriptions.cache import SubscriptionCache
from workers.subscriptions.store import SubscriptionStore


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topology = Topology.from_settings(settings)
        # Set when the worker begins to shut down: what has not been attempted yet waits in RabbitMQ.
        self.stopping = threading.Event()

    @cached_property
    def subscriptions(self) -> SubscriptionCache:
        engine = db.create_engine(self.settings.database_url)
        db.ensure_migrated(engine)
        cache = SubscriptionCache(SubscriptionStore(engine), self.settings.subscription_refresh_seconds)
        cache.start()
        return cache

    @cached_property
    def http_client(self) -> http.DeliveryClient:
        return http.build_client(self.settings)

    @cached_property
    def spare_threads(self) -> SpareThreads:
        """Threads for the first attempts of an event with several subscriptions, made side by side."""
        return SpareThreads(self.settings.fan_out_concurrency, "first-attempt")

    @cached_property
    def delay_batcher(self) -> DelayBatcher:
        """Sends deliveries that must wait to the delay queues, many to a message."""
        return DelayBatcher(delaybatch.connector(self.settings.amqp_url), self.topology.retries_queue)

    def start(self) -> None:
        """Open everything now, so a bad database fails the process at boot, not on the first event."""
        _ = self.subscriptions, self.http_client
