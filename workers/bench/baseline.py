"""The baseline: the least code that moves an event from RabbitMQ to a webhook receiver.

One process consumes one queue with pika, POSTs each message body with one
keep-alive ``httpx.Client`` and acks it, one message at a time: no fan-out, no
signing, no metrics, no retries, no database. It is what anyone would write
first, and what hookline's figures are compared with (``hookline bench
--baseline`` starts as many of these processes as hookline has workers). It is
kept deliberately plain: cleverness here would flatter neither side.

A failed POST (an exception or a status other than 2xx) is counted and the
message acked all the same, as the simplest loop would. On SIGTERM, or when its
stdin closes (the parent died), the process prints ``{"posted": N, "errors": M}``
and exits.

    python -m workers.bench.baseline --amqp-url URL --queue Q --url http://127.0.0.1:PORT/b
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from dataclasses import dataclass
from types import FrameType

import httpx
import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

PREFETCH = 10  # a modest prefetch, as a first version would set


@dataclass
class Counts:
    posted: int = 0
    errors: int = 0


def consume(amqp_url: str, queue: str, url: str, counts: Counts) -> None:
    """POST every message of ``queue`` to ``url`` and ack it, until interrupted."""
    client = httpx.Client(timeout=15.0)
    # The nodes of a comma-separated URL, tried in turn, as hookline's workers do.
    nodes = [pika.URLParameters(node.strip()) for node in amqp_url.split(",") if node.strip()]
    connection = pika.BlockingConnection(nodes)
    channel = connection.channel()
    channel.basic_qos(prefetch_count=PREFETCH)

    def on_message(ch: BlockingChannel, method: Basic.Deliver, _props: BasicProperties, body: bytes) -> None:
        try:
            status = client.post(url, content=body, headers={"content-type": "application/json"}).status_code
        except httpx.HTTPError:
            status = 0
        counts.posted += 1
        counts.errors += not 200 <= status < 300
        assert method.delivery_tag is not None  # noqa: S101 - a Deliver always has one; narrows for mypy
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, on_message)
    channel.start_consuming()


def _stop(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def _stop_at_eof() -> None:
    sys.stdin.buffer.read()
    os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="hookline bench baseline loop")
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--url", required=True)
    args = parser.parse_args(argv)
    counts = Counts()
    signal.signal(signal.SIGTERM, _stop)
    threading.Thread(target=_stop_at_eof, daemon=True).start()
    try:
        consume(args.amqp_url, args.queue, args.url, counts)
    finally:
        print(json.dumps({"posted": counts.posted, "errors": counts.errors}), flush=True)


if __name__ == "__main__":
    main()
