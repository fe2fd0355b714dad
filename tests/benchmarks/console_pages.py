"""How long the web console's pages take to answer on a log of 10 million attempts, p50 and p99.

Not a test: it prints figures. The log, its database and the server are those
of ``tests/benchmarks/api_queries.py`` (imported: the 10-million-attempt fill
of ``deliverylog_store.py``, dropped at the end unless ``--keep``;
``--database URL`` runs on a log kept before). It signs in to ``/console``
with the key, as a browser does, then times ``--requests`` requests of each
page, one after the other on one keep-alive connection, from the request
leaving this process to the whole HTML read: the overview (queue depths and
the last hour's deliveries counted from the log), the deliveries page with
each filter, an event's page, a page a week deep, the subscriptions list.

    .venv/bin/python tests/benchmarks/console_pages.py [--attempts 10000000] [--requests 300] [--json]
"""

from __future__ import annotations

import json
import random
import re
import sys
from datetime import UTC, datetime, timedelta

import httpx
from api_queries import Request, Samples, database, parse_args, running_api, time_each

TARGET_MS = 200
FORM_TIME = "%Y-%m-%dT%H:%M:%S"


def main() -> None:
    options = parse_args()
    with database(options) as url:
        samples = Samples.read(url)
        with running_api(url) as (base, key):
            figures = measure(base, key, samples, options.requests)
    report(figures, options.attempts, options.requests, as_json=options.json)


def pages(samples: Samples) -> dict[str, Request]:
    """Each page: a name, and what makes one request of it (a path and its query parameters)."""
    pick = random.choice
    now = datetime.now(UTC)
    week_ago = now - timedelta(days=7)
    return {
        "overview": lambda: ("/console/", {}),
        "deliveries": lambda: ("/console/deliveries", {}),
        "deliveries, a subscription's": lambda: (
            "/console/deliveries",
            {"subscription_id": pick(samples.subscriptions)},
        ),
        "deliveries, dead-lettered": lambda: ("/console/deliveries", {"state": "dead_lettered"}),
        "deliveries, event type order.*": lambda: ("/console/deliveries", {"event_type": "order.*"}),
        "deliveries, an hour a week ago": lambda: (
            "/console/deliveries",
            {
                "since": (week_ago - timedelta(hours=1)).strftime(FORM_TIME),
                "until": week_ago.strftime(FORM_TIME),
            },
        ),
        "deliveries, a page a week deep": lambda: ("/console/deliveries", {"cursor": pick(samples.deep)}),
        "an event with its attempts": lambda: (f"/console/events/{pick(samples.events)}", {}),
        "subscriptions": lambda: ("/console/subscriptions", {}),
    }


def measure(base: str, key: str, samples: Samples, requests: int) -> dict[str, dict[str, float]]:
    """p50, p99 and max in milliseconds per page, ``requests`` of each after a warm-up."""
    with httpx.Client(base_url=base, timeout=30) as client:
        form = re.search(r'name="form_token" value="([^"]+)"', client.get("/console/sign-in").text)
        token = form.group(1) if form else ""
        signed_in = client.post("/console/sign-in", data={"key": key, "form_token": token})
        if signed_in.status_code != 303:
            sys.exit(f"console_pages: sign-in answered {signed_in.status_code}")
        return time_each(client, pages(samples), requests, tool="console_pages")


def report(figures: dict[str, dict[str, float]], attempts: int, requests: int, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"attempts": attempts, "requests": requests, "pages": figures}, indent=2))
        return
    print(f"{requests} requests of each page, one at a time, on a log of {attempts} attempts")
    width = max(len(name) for name in figures)
    print(f"  {'page'.ljust(width)}  {'p50':>8}  {'p99':>8}  {'max':>8}")
    for name, each in figures.items():
        print(f"  {name.ljust(width)}  {each['p50']:>5} ms  {each['p99']:>5} ms  {each['max']:>5} ms")
    slow = [name for name, each in figures.items() if each["p99"] >= TARGET_MS]
    print(f"p99 under {TARGET_MS} ms: {'every page' if not slow else 'all but ' + ', '.join(slow)}")


if __name__ == "__main__":
    main()
