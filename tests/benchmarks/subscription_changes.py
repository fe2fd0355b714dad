"""How long after a subscription is added a worker's cache matches events to it.

Not a test: it prints figures. In one process, as a worker process has them:
a subscription cache on a temporary SQLite database whose periodic reload is
five minutes away, and a listener on the subscription-changes exchange of the
broker at 127.0.0.1. Each round adds a subscription for a new event type, as
``hookline subscriptions add`` does (commit, then announce), and times from the
commit to the moment the cache matches that type: the announcement's round
trip through RabbitMQ plus one reload. Then it deletes what it declared.

    .venv/bin/python tests/benchmarks/subscription_changes.py [--rounds 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pika
import structlog

from workers.broker import changes
from workers.subscriptions import db, migrating
from workers.subscriptions.cache import SubscriptionCache
from workers.subscriptions.secretbox import SecretBox, generate_key
from workers.subscriptions.store import SubscriptionStore

AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
FIVE_MINUTES = 300.0


def main() -> None:
    options = parse_args()
    # The cache logs each reload: one line per round would bury the figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    exchange = f"hookline.bench.{uuid.uuid4().hex[:10]}.subscriptions.changed"
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'bench.db'}"
        migrating.migrate(url)
        engine = db.create_engine(url)
        store = SubscriptionStore(engine, SecretBox([generate_key()]))
        cache = SubscriptionCache(store, FIVE_MINUTES)
        cache.start()
        listener = changes.Listener(AMQP_URL, exchange, cache.refresh_soon)
        listener.start()
        try:
            if not listener.wait_listening(timeout=10):
                sys.exit("subscription_changes: the listener did not bind within 10 s")
            seconds = [one_round(store, cache, exchange, n) for n in range(options.rounds)]
        finally:
            listener.stop()
            cache.stop()
            engine.dispose()
            delete_exchange(exchange)
    report(seconds, as_json=options.json)


def one_round(store: SubscriptionStore, cache: SubscriptionCache, exchange: str, n: int) -> float:
    event_type = f"bench.change{n}"
    store.add("https://hooks.example.com/in", [event_type])
    committed = time.monotonic()
    not_told = changes.announce(AMQP_URL, exchange)
    if not_told is not None:
        sys.exit(f"subscription_changes: {not_told}")
    while not cache.matching(event_type):
        if time.monotonic() - committed > 10:
            sys.exit(f"subscription_changes: round {n} not seen within 10 s")
        time.sleep(0.0005)
    return time.monotonic() - committed


def delete_exchange(exchange: str) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    connection.channel().exchange_delete(exchange)
    connection.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="subscriptions to add, one at a time")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


def report(seconds: list[float], *, as_json: bool) -> None:
    ordered = sorted(seconds)
    figures = {
        "rounds": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }
    if as_json:
        print(json.dumps(figures))
        return
    print(
        f"added and matched, {figures['rounds']} rounds: median {figures['median_ms']} ms, "
        f"p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms"
    )


if __name__ == "__main__":
    main()
