"""What the delivery log's store sustains on PostgreSQL: rows written per second, and each CLI query's time.

Not a test: it prints figures. It creates a throwaway database on the
PostgreSQL at 127.0.0.1 (``HOOKLINE_TEST_PG_URL``), migrates the log into it,
and drops it at the end, also after an error or Ctrl-C.

1. **Writes**: ``LogStore.write`` of batches shaped like the recorder's, each
   the records of ``--batch`` worker messages; a message is one event that
   matched two subscriptions and the first attempt of each (one in ten failed
   and retried, whose second attempt comes in a later batch), so 3 records
   and 6 rows (event, payload, 2 deliveries, 2 attempts) per message.
2. **A log of 10 million attempts**, filled server-side with ``INSERT …
   SELECT generate_series`` (not through ``write``: that would take as long
   as the figure it measures), spread over the 14 days of the default
   retention: 2.5 million events, 5 million deliveries to 50 subscriptions
   across 20 event types, two attempts each; 1% dead-lettered, 1% retrying,
   1% skipped. Then the writes again, on the full log.
3. **Queries**: the time of each query behind ``hookline events show``,
   ``deliveries show`` and ``deliveries list`` with each filter, first page
   and a page a week deep, median of ``--repeat`` runs after one warm-up, in
   this process (the command adds its start-up, measured once at the end).

    .venv/bin/python tests/benchmarks/deliverylog_store.py [--attempts 10000000] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from workers.deliverylog import queries
from workers.deliverylog.records import AttemptRecord, DeliveryState, EventRecord, Record
from workers.deliverylog.schema import migrate_log
from workers.deliverylog.store import LogStore
from workers.subscriptions import db

PG_ADMIN_URL = os.environ.get("HOOKLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
HOOKLINE = str(Path(sys.executable).with_name("hookline"))
DAYS = 14
SUBSCRIPTIONS = 50
EVENT_TYPES = [f"{noun}.{verb}" for noun in ("order", "invoice", "payment", "customer") for verb in (
    "created", "updated", "paid", "failed", "closed")]  # fmt: skip
BODY = '{"type":"order.created","timestamp":"2026-03-10T11:59:59Z","data":{"order_id":%d,"total":"19.99","currency":"EUR","items":[{"sku":"A-1","qty":2}]}}'  # noqa: E501 - one realistic body


def main() -> None:
    options = parse_args()
    with throwaway_database() as url:
        engine = db.create_engine(url)
        migrate_log(engine)
        store = LogStore(engine)
        figures: dict[str, Any] = {"writes_empty_log": measure_writes(store, options)}
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
            figures["fill"] = fill(connection, options.attempts)
        figures["writes_full_log"] = measure_writes(store, options)
        figures["queries"] = measure_queries(store, url, options.repeat)
        figures["cli_start_ms"] = cli_start(url)
        engine.dispose()
    report(figures, as_json=options.json)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000_000, help="attempts in the filled log")
    parser.add_argument("--batch", type=int, default=500, help="worker messages per write")
    parser.add_argument("--batches", type=int, default=40, help="writes measured, each time")
    parser.add_argument("--repeat", type=int, default=7, help="runs of each query")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


@contextmanager
def throwaway_database() -> Iterator[str]:
    name = f"hookline_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def messages(count: int, start: float, retried: list[Record]) -> list[Record]:
    """The records of ``count`` worker messages received from ``start`` on; retries of earlier ones first."""
    records: list[Record] = list(retried)
    retried.clear()
    for number in range(count):
        event_id = f"evt_{uuid.uuid4().hex[:22]}"
        at = start + number * 0.0005
        records.append(EventRecord(event_id, "order.created", "2026-03-10T11:59:59Z", BODY % number, at, 2))
        for subscription in ("sub_benchaaaaaaaaaaaaaaa", "sub_benchbbbbbbbbbbbbbbb"):
            failed = hash((event_id, subscription)) % 10 == 0
            records.append(first_attempt(event_id, subscription, at, failed=failed))
            if failed:
                retried.append(first_attempt(event_id, subscription, at + 5, failed=False, number=2))
    return records


def first_attempt(
    event_id: str, subscription: str, at: float, *, failed: bool, number: int = 1
) -> AttemptRecord:
    return AttemptRecord(
        event_id=event_id,
        subscription_id=subscription,
        run="",
        attempt=number,
        started_at=at + 0.01,
        duration=0.05,
        status=503 if failed else 200,
        reason="http_status" if failed else None,
        error="503 Service Unavailable" if failed else None,
        response_body='{"error":"maintenance"}' if failed else None,
        state=DeliveryState.RETRYING if failed else DeliveryState.DELIVERED,
        next_attempt_at=at + 5 if failed else None,
        event_type="order.created",
    )


def measure_writes(store: LogStore, options: argparse.Namespace) -> dict[str, float]:
    retried: list[Record] = []
    batches = [messages(options.batch, time.time() + n, retried) for n in range(options.batches + 1)]
    store.write(batches[0])  # the day's partitions, connections, prepared plans
    rows = records = 0
    started = time.perf_counter()
    for batch in batches[1:]:
        report = store.write(batch)
        records += len(batch)
        rows += 2 * report.events + report.deliveries + report.attempts
    elapsed = time.perf_counter() - started
    return {
        "messages_per_s": round(options.batch * options.batches / elapsed),
        "records_per_s": round(records / elapsed),
        "rows_per_s": round(rows / elapsed),
        "ms_per_batch": round(1000 * elapsed / options.batches, 1),
    }


def fill(connection: psycopg.Connection[Any], attempts: int) -> dict[str, float]:
    """``attempts`` attempts (two per delivery, two deliveries per event), evenly over the last DAYS days."""
    events_per_day = attempts // (4 * DAYS)
    connection.execute("SET synchronous_commit = off")
    connection.execute("SET maintenance_work_mem = '256MB'")
    started = time.perf_counter()
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    for age in range(DAYS, -1, -1):
        day = today - timedelta(days=age)
        count = events_per_day if age else events_per_day // 2  # today: the half-day so far
        fill_day(connection, day, age, count)
        print(f"filled {day:%Y-%m-%d}: {count} events", file=sys.stderr, flush=True)
    connection.execute("ANALYZE")
    totals = {
        table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # type: ignore[index]  # noqa: S608 - our tables
        for table in ("log_events", "log_deliveries", "log_attempts")
    }
    return {**totals, "seconds": round(time.perf_counter() - started)}


def fill_day(connection: psycopg.Connection[Any], day: datetime, age: int, count: int) -> None:
    """One day of events, deliveries and attempts, in SQL: nothing crosses the wire but the statement."""
    for table in ("log_events", "log_payloads", "log_deliveries", "log_attempts"):
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table}_{day:%Y%m%d} PARTITION OF {table} "
            f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
        )
    seconds = 86400 if age else (datetime.now(UTC) - day).total_seconds()
    types = "ARRAY[" + ",".join(f"'{each}'" for each in EVENT_TYPES) + "]"
    params = {"day": day, "count": count, "spread": seconds / max(count, 1), "age": age}
    # g: the event's number in the day; k: its two deliveries. Ids are the day and g, so days never collide.
    connection.execute(
        f"""
        INSERT INTO log_events (id, received_at, type, timestamp, matched)
        SELECT format('evt_%%s_%%s', %(age)s, g), %(day)s + g * %(spread)s * interval '1 second',
               ({types})[1 + g %% 20], '2026-03-10T11:59:59Z', 2
        FROM generate_series(0, %(count)s - 1) g
        """,  # noqa: S608 - constants of this script, no input
        params,
    )
    connection.execute(
        f"""
        INSERT INTO log_payloads (event_id, received_at, payload)
        SELECT format('evt_%%s_%%s', %(age)s, g), %(day)s + g * %(spread)s * interval '1 second',
               replace('{BODY.replace("%", "%%")}', '%%d', g::text)
        FROM generate_series(0, %(count)s - 1) g
        """,  # noqa: S608 - constants of this script, no input
        params,
    )
    connection.execute(
        f"""
        INSERT INTO log_deliveries
        SELECT 'dlv_' || left(md5(format('%%s_%%s_%%s', %(age)s, g, k)), 26),
               %(day)s + g * %(spread)s * interval '1 second',
               format('evt_%%s_%%s', %(age)s, g), format('sub_%%s', lpad(((g * 2 + k) %% {SUBSCRIPTIONS})::text, 20, 'x')),
               '', ({types})[1 + g %% 20],
               CASE WHEN g %% 100 = 7 THEN 'dead_lettered' WHEN g %% 100 = 13 THEN 'retrying'
                    WHEN g %% 100 = 29 THEN 'skipped' ELSE 'delivered' END,
               2, CASE WHEN g %% 100 IN (7, 13) THEN 503 ELSE 200 END,
               CASE WHEN g %% 100 IN (7, 13) THEN 'http_status' END,
               %(day)s + (g * %(spread)s + 5) * interval '1 second', NULL,
               %(day)s + g * %(spread)s * interval '1 second', %(day)s + (g * %(spread)s + 5) * interval '1 second'
        FROM generate_series(0, %(count)s - 1) g, (VALUES (0), (1)) AS sub(k)
        """,  # noqa: E501, S608 - SQL built from this script's constants, no input
        params,
    )
    connection.execute(
        """
        INSERT INTO log_attempts
        SELECT d.id, a, d.received_at, d.received_at + (a - 1) * interval '5 seconds', 0.05,
               CASE WHEN a = 1 THEN 503 ELSE d.last_status END,
               CASE WHEN a = 1 THEN 'http_status' ELSE d.last_reason END,
               CASE WHEN a = 1 THEN '503 Service Unavailable' END, NULL,
               CASE WHEN a = 1 THEN 'retrying' ELSE d.state END, NULL
        FROM log_deliveries d, (VALUES (1), (2)) AS attempt(a)
        WHERE d.received_at >= %(day)s AND d.received_at < %(day)s + interval '1 day'
          AND d.subscription_id NOT LIKE 'sub_bench%%'
        """,
        params,
    )


def measure_queries(store: LogStore, url: str, repeat: int) -> dict[str, float]:
    """Milliseconds per query, median of ``repeat`` after a warm-up."""
    week_ago = datetime.now(UTC) - timedelta(days=7)
    sample = store.deliveries(until=week_ago, limit=1).deliveries[0]
    deep = queries.encode_cursor(sample)
    subscription = sample.subscription_id
    cases: dict[str, Callable[[], object]] = {
        "events show": lambda: store.event(sample.event_id),
        "deliveries show": lambda: store.delivery(sample.id),
        "deliveries list": store.deliveries,
        "deliveries list, a week deep (--cursor)": lambda: store.deliveries(cursor=deep),
        "--subscription": lambda: store.deliveries(subscription_id=subscription),
        "--subscription, a week deep": lambda: store.deliveries(subscription_id=subscription, cursor=deep),
        "--state dead_lettered": lambda: store.deliveries(state=DeliveryState.DEAD_LETTERED),
        "--state delivered": lambda: store.deliveries(state=DeliveryState.DELIVERED),
        "--event-type order.paid": lambda: store.deliveries(event_type_pattern="order.paid"),
        "--event-type 'order.*'": lambda: store.deliveries(event_type_pattern="order.*"),
        "--event-type '#'": lambda: store.deliveries(event_type_pattern="#"),
        "--since 1h": lambda: store.deliveries(since=datetime.now(UTC) - timedelta(hours=1)),
        "--since/--until, an hour a week ago": lambda: store.deliveries(
            since=week_ago - timedelta(hours=1), until=week_ago
        ),
        "--subscription --state dead_lettered": lambda: store.deliveries(
            subscription_id=subscription, state=DeliveryState.DEAD_LETTERED
        ),
        "--event-type order.paid --state dead_lettered": lambda: store.deliveries(
            event_type_pattern="order.paid", state=DeliveryState.DEAD_LETTERED
        ),
        "--subscription --event-type 'invoice.*' --state retrying": lambda: store.deliveries(
            subscription_id=subscription, event_type_pattern="invoice.*", state=DeliveryState.RETRYING
        ),
        "replay candidates, one subscription, 1 hour": lambda: store.replay_candidates(
            subscription, week_ago - timedelta(hours=1), week_ago, {DeliveryState.DEAD_LETTERED}
        ),
    }
    timings = {}
    for name, query in cases.items():
        query()
        runs = []
        for _ in range(repeat):
            started = time.perf_counter()
            query()
            runs.append(time.perf_counter() - started)
        timings[name] = round(statistics.median(runs) * 1000, 1)
    return timings


def cli_start(url: str) -> float:
    """A whole ``hookline deliveries list`` in its own process: Python, imports, connect, query, print."""
    env = {**os.environ, "HOOKLINE_DATABASE_URL": url}
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([HOOKLINE, "deliveries", "list"], env=env, capture_output=True, check=True)
        runs.append(time.perf_counter() - started)
    return round(statistics.median(runs) * 1000)


def report(figures: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    for label in ("writes_empty_log", "writes_full_log"):
        writes = figures[label]
        print(
            f"{label.replace('_', ' ')}: {writes['rows_per_s']} rows/s ({writes['records_per_s']} records/s, "
            f"{writes['messages_per_s']} worker messages/s), {writes['ms_per_batch']} ms per batch"
        )
    fill_figures = figures["fill"]
    print(
        f"filled {fill_figures['log_events']} events, {fill_figures['log_deliveries']} deliveries, "
        f"{fill_figures['log_attempts']} attempts in {fill_figures['seconds']} s"
    )
    width = max(len(name) for name in figures["queries"])
    for name, milliseconds in figures["queries"].items():
        print(f"  {name.ljust(width)}  {milliseconds:7.1f} ms")
    print(f"`hookline deliveries list` as a process, start to finish: {figures['cli_start_ms']} ms")


if __name__ == "__main__":
    main()
