"""How fast ``hookline recorder`` writes a backlog of the log queue into the delivery log.

Not a test: it prints figures. It fills a log queue of its own on the broker at
127.0.0.1 with ``--messages`` log messages as workers publish them, each
holding the records of ``--per-message`` actor messages (an event fanned out
to two subscriptions: the event and both first attempts, so 3 records and 6
rows: event, payload, 2 deliveries, 2 attempts), then starts ``hookline
recorder`` and times it from the moment it consumes until every event is in
the log: the whole path (decode, one transaction per batch, ack), as after a
database outage. On SQLite (a temporary file) or PostgreSQL (a throwaway database on
``HOOKLINE_TEST_PG_URL``); everything it made is removed at the end.

    .venv/bin/python tests/benchmarks/recorder_drain.py [--database sqlite|postgresql] [--messages 400]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika
import psutil
import psycopg
import sqlalchemy as sa

from workers.broker.recordbatch import encode
from workers.broker.topology import Topology
from workers.deliverylog.records import AttemptRecord, DeliveryState, EventRecord, Record
from workers.deliverylog.schema import migrate_log
from workers.deliverylog.tables import events_table
from workers.ops.recorder import declare
from workers.subscriptions import db

AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
PG_ADMIN_URL = os.environ.get("HOOKLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HOOKLINE = str(Path(sys.executable).with_name("hookline"))
ROWS_PER_ACTOR_MESSAGE = 6
PAYLOAD = json.dumps({"type": "order.created", "timestamp": "2026-11-28T10:00:00Z", "data": {"order": 42}})


def main() -> None:
    options = parse_args()
    prefix = f"hookline.bench.{uuid.uuid4().hex[:10]}"
    topology = Topology(exchange=prefix, prefix=prefix)
    with database(options.database) as url:
        engine = db.create_engine(url)
        migrate_log(engine)
        declare(AMQP_URL, topology)
        try:
            fill(topology.log_queue, options.messages, options.per_message)
            figures = drain(topology, url, engine, options.messages * options.per_message)
        finally:
            engine.dispose()
            delete_queues(topology)
    figures |= {
        "database": options.database,
        "messages": options.messages,
        "per_message": options.per_message,
    }
    print(json.dumps(figures, indent=2) if options.json else describe(figures))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="postgresql")
    parser.add_argument("--messages", type=int, default=400, help="log messages in the backlog")
    parser.add_argument("--per-message", type=int, default=100, help="actor messages per log message")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


@contextmanager
def database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{Path(directory) / 'log.db'}"
        return
    name = f"hookline_drain_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def actor_message(n: int, now: float) -> list[Record]:
    event = EventRecord(f"evt_{n:012d}", "order.created", "2026-11-28T10:00:00Z", PAYLOAD, now, 2)
    attempts = [
        AttemptRecord(
            event_id=event.id,
            subscription_id=subscription,
            run="",
            attempt=1,
            started_at=now,
            duration=0.02,
            status=200,
            reason=None,
            error=None,
            response_body="ok",
            state=DeliveryState.DELIVERED,
            next_attempt_at=None,
            event_type=event.type,
        )
        for subscription in ("sub_aaaaaaaaaaaaaaaaaaaa", "sub_bbbbbbbbbbbbbbbbbbbb")
    ]
    return [event, *attempts]


def fill(queue: str, messages: int, per_message: int) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    channel.confirm_delivery()
    now = time.time()
    properties = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    for m in range(messages):
        items = [actor_message(m * per_message + n, now) for n in range(per_message)]
        channel.basic_publish("", queue, encode(items), properties, mandatory=True)
    connection.close()


def drain(topology: Topology, url: str, engine: sa.Engine, events: int) -> dict[str, float]:
    env = {**os.environ, "HOOKLINE_AMQP_URL": AMQP_URL, "HOOKLINE_QUEUE_PREFIX": topology.prefix}
    env |= {"HOOKLINE_EXCHANGE": topology.prefix, "HOOKLINE_DATABASE_URL": url}
    env["HOOKLINE_LOG_LEVEL"] = "WARNING"
    recorder = subprocess.Popen([HOOKLINE, "recorder", "--metrics-port", "0"], env=env)
    try:
        process = psutil.Process(recorder.pid)
        while not consumers(topology.log_queue):  # its start-up (imports, database check) is not the figure
            time.sleep(0.01)
        started, cpu_before = time.monotonic(), sum(process.cpu_times()[:2])
        while logged(engine) < events:
            if recorder.poll() is not None:
                sys.exit(f"recorder_drain: the recorder exited ({recorder.returncode})")
            time.sleep(0.2)
        seconds = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
    finally:
        recorder.terminate()
        recorder.wait(timeout=60)
    records = events * 3
    return {
        "seconds": round(seconds, 2),
        "records_per_s": round(records / seconds),
        "rows_per_s": round(events * ROWS_PER_ACTOR_MESSAGE / seconds),
        "recorder_cpu_ms_per_1000_records": round(cpu * 1000 / records * 1000, 1),
    }


def consumers(queue: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)
    finally:
        connection.close()


def logged(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(events_table)).scalar_one())


def delete_queues(topology: Topology) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    channel = connection.channel()
    for queue in (topology.log_queue, topology.invalid_log_queue):
        channel.queue_delete(queue)
    connection.close()


def describe(figures: dict[str, object]) -> str:
    backlog = f"{figures['messages']} log messages x {figures['per_message']} actor messages"
    rates = f"{figures['records_per_s']} records/s, {figures['rows_per_s']} rows/s"
    cpu = f"recorder CPU {figures['recorder_cpu_ms_per_1000_records']} ms per 1000 records"
    return f"{figures['database']}: {backlog} drained in {figures['seconds']} s: {rates}, {cpu}"


if __name__ == "__main__":
    main()
