"""One endpoint that never answers must not starve the healthy ones.

Not a test: it prints figures. Everything runs on this machine against the
broker on 127.0.0.1. Healthy subscriptions point at a fast receiver on
loopback; one more points at a server that accepts connections and never
answers, so every request to it waits for HOOKLINE_HTTP_TIMEOUT. Half of all
events are for that endpoint.

Each scenario runs twice with fresh queues and workers: *without* the hanging
subscription (its events are still published and fanned out to nobody) and
*with* it. Compared, for deliveries to the healthy endpoints:

- throughput at saturation: every event is published before the workers
  start (so the publisher, which runs in this process beside the receiver,
  does not compete with them); deliveries/s from the first healthy delivery
  to the last. Target: with/without >= 0.9.
- p99 latency at a stated load (half of the saturation throughput measured
  without): event timestamp to receipt, after 40 healthy events have warmed
  up the workers (the hanging endpoint is new to them). Target:
  with/without < 2.

Each pair runs ``--repeat`` times (without and with alternating) and the
median ratio is the figure: on a shared 2-core machine one run can be 20 %
off. Every run's figures are printed too.

    .venv/bin/python tests/benchmarks/isolation.py [--events 4000] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for support.*

from support.processes import Worker, run_hookline, run_json, wait_until
from support.receiver import Receiver, receiver, silent_server
from support.topology import delete_topology

from producer import Event, ProducerSettings, Publisher
from workers.subscriptions.secretbox import generate_key

AMQP_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
HEALTHY_TYPES = [f"bench.ok.n{index}" for index in range(4)]
HANGING_TYPE = "bench.hang.n0"
WARM_UP_EVENTS = 40


def main() -> None:
    options = parse_args()
    figures: dict[str, Any] = {"settings": vars(options), "saturation": [], "stated_load": []}
    with receiver() as healthy, silent_server() as hanging_url:
        # Without and with alternate, so that drift on a shared machine hits both alike.
        for _ in range(options.repeat):
            without = scenario(healthy, None, options, rate=None)
            with_hang = scenario(healthy, hanging_url, options, rate=None)
            figures["saturation"].append({"without": without, "with": with_hang})
        capacity = statistics.median(run["without"]["deliveries_per_s"] for run in figures["saturation"])
        stated = round(capacity / 2)
        for _ in range(options.repeat):
            without_at = scenario(healthy, None, options, rate=stated)
            with_at = scenario(healthy, hanging_url, options, rate=stated)
            figures["stated_load"].append({"without": without_at, "with": with_at})
    figures["throughput_ratios"] = [ratio(run, "deliveries_per_s") for run in figures["saturation"]]
    figures["throughput_ratio"] = statistics.median(figures["throughput_ratios"])
    figures["stated_load_events_per_s"] = stated * 2
    figures["p99_ratios"] = [ratio(run, "p99_ms") for run in figures["stated_load"]]
    figures["p99_ratio"] = statistics.median(figures["p99_ratios"])
    report(figures, as_json=options.json)


def ratio(run: dict[str, dict[str, float]], figure: str) -> float:
    return round(run["with"][figure] / run["without"][figure], 3)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="healthy events per run (as many hanging)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--http-timeout", type=float, default=15.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each pair; the median ratio counts")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def scenario(
    healthy: Receiver, hanging_url: str | None, options: argparse.Namespace, rate: int | None
) -> dict[str, Any]:
    env = fresh_env(options)
    run_hookline(env, "setup")
    for index, event_type in enumerate(HEALTHY_TYPES):
        run_json(env, "subscriptions", "add", "--url", f"{healthy.url}/ok/{index}", "--event", event_type)
    if hanging_url:
        run_json(env, "subscriptions", "add", "--url", hanging_url, "--event", HANGING_TYPE)
    prefix = env["HOOKLINE_QUEUE_PREFIX"]
    worker = Worker(
        env,
        Path(env["HOOKLINE_BENCH_DIR"]) / "worker.log",
        "--processes",
        str(options.processes),
        "--threads",
        str(options.threads),
    )
    before = len(healthy.requests)
    queues = [f"{prefix}.events", f"{prefix}.retries"]
    try:
        started: float | None = None
        if rate is None:
            publish(env, options.events, rate)  # the whole backlog waits for the workers
            worker.start(queues)
        else:
            worker.start(queues)
            before = warm_up(env, healthy, worker.log_path)
            started = time.time()
            publish(env, options.events, rate)
        wait_until(
            lambda: len(healthy.requests) - before >= options.events,
            timeout=600,
            what="every healthy delivery",
            log=worker.log_path,
        )
        received = healthy.requests[before : before + options.events]
    finally:
        worker.terminate(timeout=120)
        delete_topology(env["HOOKLINE_AMQP_URL"], env["HOOKLINE_EXCHANGE"], env["HOOKLINE_QUEUE_PREFIX"])
    return measure(received, started)


def warm_up(env: dict[str, str], healthy: Receiver, log: Path) -> int:
    """A few healthy deliveries first, so both processes know the healthy endpoint answers.

    Steady state is what is compared: in production the healthy endpoints are
    long known. The hanging endpoint is not warmed up: its first contact counts.
    """
    before = len(healthy.requests)
    publish(env, WARM_UP_EVENTS, None, hanging=False)
    wait_until(lambda: len(healthy.requests) - before >= WARM_UP_EVENTS, timeout=60, what="warm-up", log=log)
    return len(healthy.requests)


def measure(received: list[Any], started: float | None) -> dict[str, Any]:
    """Figures for the healthy deliveries; the time runs from ``started``, or the first delivery."""
    latencies = sorted(request.wall - event_time(request.body) for request in received)
    first = min(request.wall for request in received) if started is None else started
    elapsed = max(request.wall for request in received) - first
    return {
        "deliveries": len(received),
        "seconds": round(elapsed, 2),
        "deliveries_per_s": round(len(received) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }


def event_time(body: bytes) -> float:
    return datetime.fromisoformat(json.loads(body)["timestamp"]).timestamp()


def publish(env: dict[str, str], healthy_events: int, rate: int | None, *, hanging: bool = True) -> None:
    """Half healthy (spread over the healthy types), half for the hanging endpoint, interleaved."""
    settings = ProducerSettings(amqp_url=env["HOOKLINE_AMQP_URL"], exchange=env["HOOKLINE_EXCHANGE"])
    types = [
        HEALTHY_TYPES[n % len(HEALTHY_TYPES)] if n % 2 == 0 else HANGING_TYPE
        for n in range(2 * healthy_events)
    ]
    if not hanging:
        types = [event_type for event_type in types if event_type != HANGING_TYPE]
    batch = 2 * (rate or 1000) // 10 or 1  # a tenth of a second's worth at a stated rate
    with Publisher(settings) as publisher:
        for start in range(0, len(types), batch):
            tick = time.monotonic()
            events = [
                Event.create(event_type, {"n": n})
                for n, event_type in enumerate(types[start : start + batch])
            ]
            if failures := publisher.publish_many(events):
                raise SystemExit(f"{len(failures)} events were not stored: {failures[0][1]}")
            if rate:
                time.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))


def fresh_env(options: argparse.Namespace) -> dict[str, str]:
    name = f"hookline.bench.{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix="hookline-bench-"))
    return {
        "HOOKLINE_AMQP_URL": AMQP_URL,
        "HOOKLINE_EXCHANGE": name,
        "HOOKLINE_QUEUE_PREFIX": name,
        "HOOKLINE_DATABASE_URL": f"sqlite:///{workdir / 'hookline.db'}",
        "HOOKLINE_SECRETS_KEY": generate_key(),  # a throwaway key for a throwaway database
        "HOOKLINE_HTTP_TIMEOUT": str(options.http_timeout),
        "HOOKLINE_ALLOW_PRIVATE_NETWORKS": "true",  # the receivers are on loopback
        "HOOKLINE_METRICS_PORT": "0",  # a benchmark never takes the port a real worker may serve on
        "HOOKLINE_LOG_LEVEL": "WARNING",
        "HOOKLINE_BENCH_DIR": str(workdir),
    }


def report(figures: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(figures, indent=2))
        return
    for name in ("saturation", "stated_load"):
        for run in figures[name]:
            for case in ("without", "with"):
                row = run[case]
                rate = f"{row['deliveries']:>6} healthy deliveries  {row['deliveries_per_s']:>7}/s"
                print(f"{name:<12} {case:<8} {rate}  p50 {row['p50_ms']:>7} ms  p99 {row['p99_ms']:>7} ms")
    runs = ", ".join(map(str, figures["throughput_ratios"]))
    ratio_now = figures["throughput_ratio"]
    print(f"throughput with/without at saturation  {ratio_now}  (runs: {runs}; target >= 0.9)")
    load = figures["stated_load_events_per_s"]
    runs = ", ".join(map(str, figures["p99_ratios"]))
    print(f"p99 with/without at {load} events/s  {figures['p99_ratio']}  (runs: {runs}; target < 2)")


if __name__ == "__main__":
    main()
