"""How fast ``hookline replay`` reads its candidates from the log and resends them, on PostgreSQL.

Not a test: it prints figures. It creates a throwaway database on the
PostgreSQL at 127.0.0.1 (``HOOKLINE_TEST_PG_URL``) and a queue prefix of its
own on the RabbitMQ at 127.0.0.1 (``HOOKLINE_TEST_AMQP_URL``), runs ``hookline
setup`` on them, logs ``--deliveries`` dead-lettered deliveries of one
subscription (and as many of another, which the replay must pass over), and
then times the two halves of a replay in this process: reading the plan
(``workers.ops.replay.plan``) and publishing every delivery confirmed, with
its state record for the log (``workers.ops.replay.replay``). No worker runs:
the deliveries stay in the retries queue, and everything is deleted at the end.

    .venv/bin/python tests/benchmarks/replay_rate.py [--deliveries 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.*

from support.logrecords import attempt, event
from support.topology import delete_topology

from producer.settings import load
from workers.deliverylog.records import DeliveryState, Record
from workers.deliverylog.store import LogStore
from workers.ops import replay as operations
from workers.settings import Settings
from workers.subscriptions import db
from workers.subscriptions.secretbox import SecretBox, generate_key
from workers.subscriptions.store import SubscriptionStore

PG_ADMIN_URL = os.environ.get("HOOKLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
HOOKLINE = str(Path(sys.executable).with_name("hookline"))
WRITE_BATCH = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--deliveries", type=int, default=10_000, help="dead letters of the replayed subscription"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    options = parser.parse_args()
    with environment() as env:
        figures = measure(env, options.deliveries)
    if options.json:
        print(json.dumps(figures, indent=2))
    else:
        for name, value in figures.items():
            print(f"{name:28} {value}")


def measure(env: dict[str, str], deliveries: int) -> dict[str, Any]:
    os.environ.update(env)
    settings = load(Settings)
    engine = db.create_engine(settings.database_url)
    subscriptions = SubscriptionStore(engine, SecretBox.from_settings(settings))
    replayed, other = (subscriptions.add("https://example.com/hooks", ["#"]) for _ in range(2))
    with LogStore.open(settings) as log:
        seed(log, [replayed.id, other.id], deliveries)
        started = time.perf_counter()
        planned = operations.plan(
            subscriptions, log, replayed.id, since=datetime.now(UTC) - timedelta(hours=2)
        )
        read = time.perf_counter() - started
    started = time.perf_counter()
    report = operations.replay(settings, planned)
    sent = time.perf_counter() - started
    engine.dispose()
    assert len(report.replayed) == deliveries, (len(report.replayed), deliveries)
    return {
        "deliveries_in_range": 2 * deliveries,
        "replayed": len(report.replayed),
        "plan_seconds": round(read, 2),
        "plan_rows_per_second": round(deliveries / read),
        "publish_seconds": round(sent, 2),
        "publish_per_second": round(deliveries / sent),
    }


def seed(log: LogStore, subscription_ids: list[str], deliveries: int) -> None:
    """``deliveries`` events in the last hour, each dead-lettered for every subscription."""
    now = time.time()
    batch: list[Record] = []
    for n in range(deliveries):
        at = now - 3600 + n * 3600 / deliveries
        event_id = f"evt_{n:08d}"
        batch.append(event(event_id, at=at, matched=len(subscription_ids)))
        batch += [
            attempt(event_id, each, 8, at=at, state=DeliveryState.DEAD_LETTERED) for each in subscription_ids
        ]
        if len(batch) >= WRITE_BATCH:
            log.write(batch)
            batch = []
    log.write(batch)


@contextmanager
def environment() -> Iterator[dict[str, str]]:
    """A throwaway database and queue prefix after `hookline setup`; both removed at the end."""
    name = f"hookline_replay_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    env = {
        "HOOKLINE_AMQP_URL": AMQP_URL,
        "HOOKLINE_EXCHANGE": name,
        "HOOKLINE_QUEUE_PREFIX": name,
        "HOOKLINE_DATABASE_URL": f"{base}/{name}",
        "HOOKLINE_SECRETS_KEY": generate_key(),
    }
    try:
        subprocess.run([HOOKLINE, "setup"], env={**os.environ, **env}, check=True, capture_output=True)
        yield env
    finally:
        delete_topology(AMQP_URL, name, name)
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
