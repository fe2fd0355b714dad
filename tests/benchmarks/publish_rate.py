"""How many events per second the producer publishes, with publisher confirms, from one process.

Not a test: it prints figures. It declares a unique exchange and a durable
queue bound to every event (as ``hookline setup`` would) on the broker at
127.0.0.1, publishes N events with ``publish_many`` and N/10 with sequential
``publish`` calls, and, for reference, N/10 with pika's own
``BlockingConnection`` in confirm mode; then it deletes what it declared.

    .venv/bin/python tests/benchmarks/publish_rate.py [-n 20000] [--json]

Event construction is outside the timings; encoding, sending and waiting for
every confirm are inside.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from ipaddress import ip_address
from urllib.parse import urlsplit

import pika

from producer import Event, ProducerSettings, Publisher

DEFAULT_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def main() -> None:
    options = parse_args()
    host = urlsplit(options.amqp_url).hostname or ""
    if host != "localhost" and not ip_address(host).is_loopback:
        sys.exit("publish_rate: only a broker on loopback is benchmarked")
    name = f"hookline.bench.{uuid.uuid4().hex[:10]}"
    admin = pika.BlockingConnection(pika.URLParameters(options.amqp_url))
    channel = admin.channel()
    channel.exchange_declare(name, "topic", durable=True)
    channel.queue_declare(name, durable=True)
    channel.queue_bind(name, name, "#")
    try:
        results = run(options.amqp_url, name, options.events)
        results["stored"] = channel.queue_declare(name, passive=True).method.message_count
    finally:
        channel.queue_delete(name)
        channel.exchange_delete(name)
        admin.close()
    report(results, as_json=options.json)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--events", type=int, default=20_000, help="events for publish_many")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--amqp-url", default=DEFAULT_URL, help="a broker on loopback")
    return parser.parse_args()


def run(amqp_url: str, exchange: str, count: int) -> dict[str, object]:
    settings = ProducerSettings(amqp_url=amqp_url, exchange=exchange)
    many = events(count)
    one_by_one = events(count // 10)
    with Publisher(settings) as publisher:
        publisher.publish(Event.create("bench.warm_up", {}))  # connecting is not what is measured

        def pipelined() -> None:
            failures = publisher.publish_many(many)
            if failures:
                raise SystemExit(f"publish_many: {len(failures)} failed, first: {failures[0][1]}")

        def sequential() -> None:
            for event in one_by_one:
                publisher.publish(event)

        figures = {
            "publish_many": rate(len(many), pipelined),
            "publish": rate(len(one_by_one), sequential),
        }
    reference = count // 10
    figures["pika_blocking_confirms"] = rate(
        reference, lambda: blocking_reference(amqp_url, exchange, reference)
    )
    return {"events": figures, "published": 1 + len(many) + 2 * len(one_by_one)}


def events(count: int) -> list[Event]:
    return [Event.create("bench.order.created", {"n": n, "note": "benchmark event"}) for n in range(count)]


def rate(count: int, publish: Callable[[], None]) -> dict[str, float]:
    started = time.perf_counter()
    publish()
    seconds = time.perf_counter() - started
    return {"count": count, "seconds": round(seconds, 3), "events_per_second": round(count / seconds)}


def blocking_reference(amqp_url: str, exchange: str, count: int) -> None:
    """What pika offers out of the box: BlockingConnection, one confirm awaited per message."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    channel.confirm_delivery()
    for event in events(count):
        properties = pika.BasicProperties(
            content_type="application/json", delivery_mode=2, message_id=event.id
        )
        channel.basic_publish(exchange, event.type, event.to_json(), properties, mandatory=True)
    connection.close()


def report(results: dict[str, object], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    figures = results["events"]
    assert isinstance(figures, dict)
    for name, figure in figures.items():
        count, seconds, per_second = figure["count"], figure["seconds"], figure["events_per_second"]
        print(f"{name:<24} {count:>7} events {seconds:>8.3f} s {per_second:>8} events/s")
    print(f"stored in the queue: {results['stored']} of {results['published']} published")


if __name__ == "__main__":
    main()
