"""Retries wait in RabbitMQ, not in worker memory; and they fire on time.

Not a test: it prints figures. Everything runs on this machine against the
broker on 127.0.0.1, with a receiver on loopback:

1. Backlog: a subscription whose endpoint answers 503, a retry schedule of one
   hour. After a warm-up, the worker's idle RSS is read; then N events are
   published (default 100,000), every first attempt fails, and each delivery
   goes to wait in a delay queue (many to a message). With all N waiting, the
   worker's RSS is read again. Target: within 10 % of idle. Deliveries in the
   delay queues are counted inside the messages; once the worker stopped, no
   event may be left unacked.
2. Timing: deliveries that fail three times with waits of 2 s, 5 s and 10 s
   (no jitter). For each retry, how long after its due time it arrived at the
   receiver (measured from the failed attempt's arrival, so it includes one
   round trip). Target: never early, at most 10 % + 1 s late.

    .venv/bin/python tests/benchmarks/retry_backlog.py [-n 100000] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.*

from support.processes import Worker, messages, run_hookline, run_json, wait_until
from support.receiver import Received, Receiver, receiver
from support.topology import delete_topology

from producer import Event, ProducerSettings, Publisher
from workers.broker.topology import Topology
from workers.subscriptions.secretbox import generate_key

AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
TIMING_SCHEDULE = (2.0, 5.0, 10.0)


def main() -> None:
    options = parse_args()
    name = f"hookline.bench.{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    env = {
        "HOOKLINE_AMQP_URL": AMQP_URL,
        "HOOKLINE_EXCHANGE": name,
        "HOOKLINE_QUEUE_PREFIX": name,
        "HOOKLINE_DATABASE_URL": f"sqlite:///{workdir / 'hookline.db'}",
        "HOOKLINE_SECRETS_KEY": generate_key(),  # a throwaway key for a throwaway database
        "HOOKLINE_LOG_LEVEL": "WARNING",
        "HOOKLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the receiver is on loopback
        "HOOKLINE_METRICS_PORT": "0",  # a benchmark never takes the port a real worker may serve on
        # Every attempt must reach the receiver: an open breaker would skip some (circuit_open).
        "HOOKLINE_BREAKER_FAILURES": "1000",
    }
    run_hookline(env, "setup")
    figures: dict[str, Any] = {}
    try:
        with receiver() as hooks:
            figures["backlog"] = backlog(env, hooks, workdir, options.events, options.processes)
            figures["timing"] = timing(env, hooks, workdir, options.timing_events)
    finally:
        delete_topology(env["HOOKLINE_AMQP_URL"], env["HOOKLINE_EXCHANGE"], env["HOOKLINE_QUEUE_PREFIX"])
    report(figures, as_json=options.json)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--events", type=int, default=100_000, help="deliveries left waiting")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument("--timing-events", type=int, default=200, help="deliveries in the timing phase")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


def backlog(
    env: dict[str, str], hooks: Receiver, workdir: Path, count: int, processes: int
) -> dict[str, Any]:
    hooks.respond = lambda _: 503
    run_json(env, "subscriptions", "add", "--url", f"{hooks.url}/backlog", "--event", "bench.backlog")
    worker_env = {**env, "HOOKLINE_RETRY_SCHEDULE": "1h"}
    worker = Worker(worker_env, workdir / "backlog-worker.log", "--processes", str(processes))
    worker.start([f"{env['HOOKLINE_QUEUE_PREFIX']}.events"])
    try:
        warm_up = 2_000
        publish(env, "bench.backlog", warm_up)
        wait_for_waiting(env, warm_up)
        time.sleep(2)
        idle = worker_rss(worker)
        started = time.monotonic()
        publish(env, "bench.backlog", count)
        wait_for_waiting(env, warm_up + count, progress=True)
        elapsed = time.monotonic() - started
        time.sleep(2)
        loaded = worker_rss(worker)
    finally:
        worker.terminate()
    events_left = messages(env["HOOKLINE_AMQP_URL"], f"{env['HOOKLINE_QUEUE_PREFIX']}.events")
    ratios = [loaded[pid] / idle[pid] for pid in idle if pid in loaded]
    return {
        "waiting": waiting(env),
        "events_not_acked": events_left,
        "idle_rss_mib": {str(pid): round(kib / 1024, 1) for pid, kib in idle.items()},
        "rss_with_backlog_mib": {str(pid): round(kib / 1024, 1) for pid, kib in loaded.items()},
        "max_rss_ratio": round(max(ratios), 3),
        "seconds_to_fail_and_park": round(elapsed, 1),
    }


def timing(env: dict[str, str], hooks: Receiver, workdir: Path, count: int) -> dict[str, Any]:
    seen: dict[str, int] = {}

    def fail_three_times(request: Received) -> int:
        key = request.headers["webhook-id"]
        seen[key] = seen.get(key, 0) + 1
        return 503 if seen[key] <= len(TIMING_SCHEDULE) else 200

    hooks.respond = fail_three_times
    run_json(env, "subscriptions", "add", "--url", f"{hooks.url}/timing", "--event", "bench.timing")
    schedule = ",".join(f"{delay:g}s" for delay in TIMING_SCHEDULE)
    worker_env = {**env, "HOOKLINE_RETRY_SCHEDULE": schedule, "HOOKLINE_RETRY_JITTER": "0"}
    worker = Worker(worker_env, workdir / "timing-worker.log").start(
        [f"{env['HOOKLINE_QUEUE_PREFIX']}.retries"]
    )
    try:
        publish(env, "bench.timing", count)
        expected = count * (len(TIMING_SCHEDULE) + 1)
        wait_until(lambda: len(hooks.on("/timing")) >= expected, timeout=120, what="every timing attempt")
    finally:
        worker.terminate()
    late = lateness(hooks.on("/timing"))
    return {
        "retries": len(late),
        "earliest_s": round(min(late), 3),
        "p50_late_s": round(statistics.median(late), 3),
        "p99_late_s": round(statistics.quantiles(late, n=100)[98], 3),
        "max_late_s": round(max(late), 3),
        "allowed_late_s": {f"{delay:g}s": round(delay * 0.1 + 1, 2) for delay in TIMING_SCHEDULE},
        "within_target": all(
            0 <= value <= delay * 0.1 + 1 for value, delay in zip(late, itertools.cycle(TIMING_SCHEDULE))
        ),
    }


def lateness(requests: list[Received]) -> list[float]:
    """For each retry: arrival minus (previous attempt's arrival + its wait), ordered by webhook."""
    by_id: dict[str, list[float]] = {}
    for request in requests:
        by_id.setdefault(request.headers["webhook-id"], []).append(request.at)
    late = []
    for arrivals in by_id.values():
        for (earlier, later), delay in zip(
            itertools.pairwise(sorted(arrivals)), TIMING_SCHEDULE, strict=False
        ):
            late.append(later - earlier - delay)
    return late


def publish(env: dict[str, str], event_type: str, count: int) -> None:
    settings = ProducerSettings(amqp_url=env["HOOKLINE_AMQP_URL"], exchange=env["HOOKLINE_EXCHANGE"])
    with Publisher(settings) as publisher:
        for start in range(0, count, 10_000):
            events = [Event.create(event_type, {"n": n}) for n in range(start, min(start + 10_000, count))]
            failures = publisher.publish_many(events)
            if failures:
                raise SystemExit(f"{len(failures)} events were not stored: {failures[0][1]}")


def waiting(env: dict[str, str]) -> int:
    """Deliveries in the delay queues, counted inside each message (a message holds a batch).

    Every message is read without an ack and handed back when the channel
    closes; RabbitMQ keeps a requeued message's expiry.
    """
    topology = Topology(exchange=env["HOOKLINE_EXCHANGE"], prefix=env["HOOKLINE_QUEUE_PREFIX"])
    connection = pika.BlockingConnection(pika.URLParameters(env["HOOKLINE_AMQP_URL"]))
    channel = connection.channel()
    total = 0
    for queue in topology.delay_queues.values():
        while True:
            method, _properties, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                break
            kwargs = json.loads(body)["kwargs"]
            total += len(kwargs["deliveries"]) if "deliveries" in kwargs else 1
    connection.close()
    return total


def wait_for_waiting(env: dict[str, str], count: int, *, progress: bool = False) -> None:
    """Until ``count`` deliveries wait in the delay queues.

    They are counted inside the messages (:func:`waiting`), which reads them
    all, so only once the events queue has nothing ready any more.
    """
    events_queue = f"{env['HOOKLINE_QUEUE_PREFIX']}.events"
    deadline = time.monotonic() + 3600
    now_waiting = 0
    while (ready := messages(env["HOOKLINE_AMQP_URL"], events_queue)) or (
        now_waiting := waiting(env)
    ) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {now_waiting} of {count} deliveries reached the delay queues")
        if progress:
            print(
                f"\r  {ready:>7} events to fan out, {now_waiting:>7} deliveries waiting",
                end="",
                file=sys.stderr,
            )
        time.sleep(1)
    if progress:
        print(file=sys.stderr)


def worker_rss(worker: Worker) -> dict[int, int]:
    """VmRSS in KiB of each dramatiq worker process (the children of `hookline worker`)."""
    assert worker.process is not None
    parent = worker.process.pid
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    rss = {}
    for pid in map(int, children):
        status = Path(f"/proc/{pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        rss[pid] = int(line.split()[1])
    return rss


def report(figures: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    backlog, timing = figures["backlog"], figures["timing"]
    print(f"deliveries waiting for retry   {backlog['waiting']}")
    print(f"events not acked (must be 0)   {backlog['events_not_acked']}")
    print(f"worker RSS idle (MiB)          {backlog['idle_rss_mib']}")
    print(f"worker RSS with backlog (MiB)  {backlog['rss_with_backlog_mib']}")
    print(f"largest RSS ratio              {backlog['max_rss_ratio']}  (target <= 1.10)")
    print(f"seconds to fail and park all   {backlog['seconds_to_fail_and_park']}")
    print(f"retries timed                  {timing['retries']}")
    print(
        f"lateness (s) min/p50/p99/max   {timing['earliest_s']} / {timing['p50_late_s']} / "
        f"{timing['p99_late_s']} / {timing['max_late_s']}  (allowed {timing['allowed_late_s']})"
    )
    print(f"timing within target           {timing['within_target']}")


if __name__ == "__main__":
    main()
