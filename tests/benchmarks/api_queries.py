"""How long the API's delivery-log queries take to answer on a log of 10 million attempts, p50 and p99.

Not a test: it prints figures. It fills a throwaway PostgreSQL database at
127.0.0.1 (``HOOKLINE_TEST_PG_URL``) with the 10-million-attempt log of
``tests/benchmarks/deliverylog_store.py`` (its ``fill``: 14 days, 50
subscriptions, 20 event types), migrates the subscription store beside it,
creates an API key, starts one ``hookline api`` on a free loopback port
against that database, and times ``--requests`` requests of each query, one
after the other on one keep-alive connection, from the request leaving this
process to the whole answer read: ``GET /v1/events/{id}`` and
``GET /v1/deliveries/{id}`` of ids picked at random across the log, and
``GET /v1/deliveries`` with each filter, its values varied (a random
subscription, a random page a week deep). The database is dropped at the end,
also after an error or Ctrl-C, unless ``--keep``; ``--database URL`` runs on a
log filled before (kept) instead of filling one.

    .venv/bin/python tests/benchmarks/api_queries.py [--attempts 10000000] [--requests 300] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from deliverylog_store import EVENT_TYPES, PG_ADMIN_URL, fill, throwaway_database

from workers.deliverylog.queries import encode_cursor
from workers.deliverylog.schema import migrate_log
from workers.deliverylog.store import LogStore
from workers.subscriptions import db, migrating

HOOKLINE = str(Path(sys.executable).with_name("hookline"))
WARM_UP = 20  # requests of each query not counted: connections, plans, the key's memo
SAMPLES = 200  # ids and cursors picked from the log, drawn from at random
# One request of a query or page: its path and query parameters, drawn anew for each call.
Request = Callable[[], tuple[str, dict[str, Any]]]


def main() -> None:
    options = parse_args()
    with database(options) as url:
        samples = Samples.read(url)
        with running_api(url) as (base, key):
            figures = measure(base, key, samples, options.requests)
    report(figures, options, as_json=options.json)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000_000, help="attempts in the filled log")
    parser.add_argument("--requests", type=int, default=300, help="requests timed of each query")
    parser.add_argument("--database", metavar="URL", help="a log filled before: used as it is, and kept")
    parser.add_argument("--keep", action="store_true", help="keep the filled database (its URL is printed)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


@contextlib.contextmanager
def database(options: argparse.Namespace) -> Iterator[str]:
    """A migrated database holding the filled log: given, or filled now and dropped after unless --keep."""
    if options.database:
        yield options.database
        return
    with contextlib.ExitStack() as stack:
        url = kept_database() if options.keep else stack.enter_context(throwaway_database())
        migrating.migrate(url)
        engine = db.create_engine(url)
        migrate_log(engine)
        engine.dispose()
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as connection:
            filled = fill(connection, options.attempts)
        print(f"filled: {filled}", file=sys.stderr)
        yield url


def kept_database() -> str:
    """A new database that nothing drops, for ``--database`` next time."""
    name = f"hookline_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1) + f"/{name}"
    print(f"keeping {url}: pass --database {url} to run again on it", file=sys.stderr)
    return url


class Samples:
    """Ids, subscriptions and cursors picked across the log, for requests that do not all hit one row."""

    def __init__(
        self, events: list[str], deliveries: list[str], deep: list[str], subscriptions: list[str]
    ) -> None:
        self.events, self.deliveries, self.deep, self.subscriptions = events, deliveries, deep, subscriptions

    @classmethod
    def read(cls, url: str) -> Samples:
        with psycopg.connect(url.replace("+psycopg", "")) as connection:
            rows = connection.execute(
                "SELECT id, event_id, subscription_id FROM log_deliveries TABLESAMPLE SYSTEM (1)"
                " ORDER BY random() LIMIT %s",
                (SAMPLES,),
            ).fetchall()
        engine = db.create_engine(url)
        store = LogStore(engine)
        week_ago = datetime.now(UTC) - timedelta(days=7)
        deep = [
            encode_cursor(store.deliveries(until=week_ago - timedelta(minutes=13 * n), limit=1).deliveries[0])
            for n in range(SAMPLES // 10)
        ]
        engine.dispose()
        subscriptions = sorted({row[2] for row in rows})
        return cls([row[1] for row in rows], [row[0] for row in rows], deep, subscriptions)


@contextlib.contextmanager
def running_api(url: str) -> Iterator[tuple[str, str]]:
    """``hookline api`` on the filled database, and a key for it; stopped with SIGTERM at the end."""
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("HOOKLINE_")},
        "HOOKLINE_DATABASE_URL": url,
        "HOOKLINE_ALLOW_PLAINTEXT_SECRETS": "true",  # no subscription here has a secret to encrypt
        "HOOKLINE_API_HOST": "127.0.0.1",
        "HOOKLINE_API_PORT": str(free_port()),
        "HOOKLINE_API_METRICS_PORT": "0",
        "HOOKLINE_LOG_LEVEL": "WARNING",
    }
    created = subprocess.run(
        [HOOKLINE, "api-keys", "create", "--name", "bench", "--json"],
        env=env,
        capture_output=True,
        check=True,
    )
    server = subprocess.Popen([HOOKLINE, "api"], env=env, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{env['HOOKLINE_API_PORT']}"
        wait_until_live(base)
        yield base, json.loads(created.stdout)["key"]
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_live(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    sys.exit("api_queries: hookline api did not answer /healthz in 30 s")


def cases(samples: Samples) -> dict[str, Request]:
    """Each query: a name, and what makes one request of it (a path and its query parameters).

    In the filled log every dead letter is an ``invoice.paid`` and every retrying delivery a
    ``payment.failed``: the cases marked "(none)" ask for what it does not hold, so the database
    reads all it has of the filter it can use before it knows the page is empty.
    """
    pick = random.choice
    now = datetime.now(UTC)
    week_ago = now - timedelta(days=7)
    one = {"limit": 50}
    types = [each for each in EVENT_TYPES if each.startswith("order.")]
    return {
        "GET /v1/events/{id}": lambda: (f"/v1/events/{pick(samples.events)}", {}),
        "GET /v1/deliveries/{id}": lambda: (f"/v1/deliveries/{pick(samples.deliveries)}", {}),
        "GET /v1/deliveries": lambda: ("/v1/deliveries", one),
        "?limit=500": lambda: ("/v1/deliveries", {"limit": 500}),
        "?cursor (a week deep)": lambda: ("/v1/deliveries", {"cursor": pick(samples.deep)}),
        "?subscription_id": lambda: ("/v1/deliveries", {"subscription_id": pick(samples.subscriptions)}),
        "?subscription_id&cursor (a week deep)": lambda: (
            "/v1/deliveries",
            {"subscription_id": pick(samples.subscriptions), "cursor": pick(samples.deep)},
        ),
        "?state=dead_lettered": lambda: ("/v1/deliveries", {"state": "dead_lettered"}),
        "?state=delivered": lambda: ("/v1/deliveries", {"state": "delivered"}),
        "?event_type=order.<verb>": lambda: ("/v1/deliveries", {"event_type": pick(types)}),
        "?event_type=order.*": lambda: ("/v1/deliveries", {"event_type": "order.*"}),
        "?event_type=#": lambda: ("/v1/deliveries", {"event_type": "#"}),
        "?since=1h ago": lambda: ("/v1/deliveries", {"since": (now - timedelta(hours=1)).isoformat()}),
        "?since&until (an hour, a week ago)": lambda: (
            "/v1/deliveries",
            {"since": (week_ago - timedelta(hours=1)).isoformat(), "until": week_ago.isoformat()},
        ),
        "?subscription_id&state=dead_lettered": lambda: (
            "/v1/deliveries",
            {"subscription_id": pick(samples.subscriptions), "state": "dead_lettered"},
        ),
        "?subscription_id&event_type=<any of 20>": lambda: (
            "/v1/deliveries",
            {"subscription_id": pick(samples.subscriptions), "event_type": pick(EVENT_TYPES)},
        ),
        "?subscription_id&event_type=<any of 20>&state=delivered": lambda: (
            "/v1/deliveries",
            {
                "subscription_id": pick(samples.subscriptions),
                "event_type": pick(EVENT_TYPES),
                "state": "delivered",
            },
        ),
        "?subscription_id&event_type=invoice.*&state=retrying (none)": lambda: (
            "/v1/deliveries",
            {"subscription_id": pick(samples.subscriptions), "event_type": "invoice.*", "state": "retrying"},
        ),
        "?event_type=invoice.paid&state=dead_lettered": lambda: (
            "/v1/deliveries",
            {"event_type": "invoice.paid", "state": "dead_lettered"},
        ),
        "?event_type=order.paid&state=dead_lettered (none)": lambda: (
            "/v1/deliveries",
            {"event_type": "order.paid", "state": "dead_lettered"},
        ),
    }


def measure(base: str, key: str, samples: Samples, requests: int) -> dict[str, dict[str, float]]:
    """p50, p99 and max in milliseconds per query, ``requests`` of each after a warm-up."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
        return time_each(client, cases(samples), requests, tool="api_queries")


def time_each(
    client: httpx.Client, requests_by_name: dict[str, Request], requests: int, *, tool: str
) -> dict[str, dict[str, float]]:
    """Each request ``WARM_UP`` times not counted, then ``requests`` times timed to the whole answer
    read: p50, p99 and max in milliseconds per name. Anything but a 200 ends the run, naming it."""
    figures: dict[str, dict[str, float]] = {}
    for name, request in requests_by_name.items():
        runs = []
        for number in range(WARM_UP + requests):
            path, params = request()
            started = time.perf_counter()
            response = client.get(path, params=params)
            elapsed = time.perf_counter() - started
            if response.status_code != 200:
                sys.exit(f"{tool}: {name}: {response.status_code} {response.text[:300]}")
            if number >= WARM_UP:
                runs.append(elapsed * 1000)
        figures[name] = percentiles(runs)
        print(f"  {name}: p50 {figures[name]['p50']} ms, p99 {figures[name]['p99']} ms", file=sys.stderr)
    return figures


def percentiles(runs: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(runs, n=100, method="inclusive")
    return {"p50": round(cuts[49], 1), "p99": round(cuts[98], 1), "max": round(max(runs), 1)}


def report(figures: dict[str, dict[str, float]], options: argparse.Namespace, *, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {"attempts": options.attempts, "requests": options.requests, "queries": figures}, indent=2
            )
        )
        return
    print(
        f"{options.requests} requests of each query, one at a time, on a log of {options.attempts} attempts"
    )
    width = max(len(name) for name in figures)
    print(f"  {'query'.ljust(width)}  {'p50':>8}  {'p99':>8}  {'max':>8}")
    for name, each in figures.items():
        print(f"  {name.ljust(width)}  {each['p50']:>5} ms  {each['p99']:>5} ms  {each['max']:>5} ms")
    slow = [name for name, each in figures.items() if each["p99"] >= 100]
    print(f"p99 under 100 ms: {'every query' if not slow else 'all but ' + ', '.join(slow)}")


if __name__ == "__main__":
    main()
