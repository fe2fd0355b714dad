"""How many events per second ``POST /v1/events`` takes from many clients, each answered after its confirm.

Not a test: it prints figures. On the broker at 127.0.0.1 it declares a unique
exchange and queues (``hookline setup``, in a fresh SQLite database in a
temporary directory), creates an API key, starts one ``hookline api`` process
on a free loopback port, and sends N events from C concurrent HTTP/1.1
keep-alive connections, each request waiting for its 202 before the
connection sends the next. The client is a few lines of asyncio streams, not
httpx: httpx's own cost per request capped it at a few hundred requests a
second on this machine, far below what the API takes. Then it stops the API, counts what the
events queue holds, and deletes what it declared.

Beside events/s and latency it prints the CPU time the API process used per
event (all its threads), which depends much less on what else the machine
runs than the rate does, the client's own CPU, and the load average before
and after, to judge how busy the machine was.

    .venv/bin/python tests/benchmarks/api_publish.py [-n 20000] [-c 64] [--idempotency-keys] [--json]

The client runs in this process and the API in another; both share the
machine with RabbitMQ. A warm-up of 500 events is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pika
import psutil

DEFAULT_URL = os.environ.get("HOOKLINE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
HOOKLINE = str(Path(sys.executable).with_name("hookline"))
WARM_UP = 500


def main() -> None:
    options = parse_args()
    name = f"hookline.bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as directory:
        env = environment(options.amqp_url, name, Path(directory))
        run_hookline(env, "setup")
        key = json.loads(run_hookline(env, "api-keys", "create", "--name", "bench", "--json"))["key"]
        server = subprocess.Popen([HOOKLINE, "api"], env=env, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{env['HOOKLINE_API_PORT']}"
            wait_until_ready(base)
            results = asyncio.run(measure(base, key, options, psutil.Process(server.pid)))
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        results["stored"] = stored_and_delete(options.amqp_url, name)
    report(results, as_json=options.json)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--events", type=int, default=20_000, help="events measured")
    parser.add_argument("-c", "--clients", type=int, default=64, help="concurrent connections")
    parser.add_argument("--idempotency-keys", action="store_true", help="send an Idempotency-Key with each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--amqp-url", default=DEFAULT_URL, help="a broker on loopback")
    return parser.parse_args()


def environment(amqp_url: str, name: str, directory: Path) -> dict[str, str]:
    host = httpx.URL(amqp_url.replace("amqp://", "http://", 1)).host
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("api_publish: only a broker on loopback is benchmarked")
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("HOOKLINE_")},
        "HOOKLINE_AMQP_URL": amqp_url,
        "HOOKLINE_EXCHANGE": name,
        "HOOKLINE_QUEUE_PREFIX": name,
        "HOOKLINE_DATABASE_URL": f"sqlite:///{directory / 'hookline.db'}",
        "HOOKLINE_ALLOW_PLAINTEXT_SECRETS": "true",
        "HOOKLINE_API_HOST": "127.0.0.1",
        "HOOKLINE_API_PORT": str(free_port()),
        "HOOKLINE_API_METRICS_PORT": "0",
        "HOOKLINE_LOG_FORMAT": "json",
    }


def run_hookline(env: dict[str, str], *args: str) -> str:
    return subprocess.run([HOOKLINE, *args], env=env, capture_output=True, text=True, check=True).stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("api_publish: hookline api did not become ready in 30 s")


async def measure(base: str, key: str, options: argparse.Namespace, server: psutil.Process) -> dict[str, Any]:
    port = httpx.URL(base).port
    assert port is not None
    await send_all(port, key, WARM_UP, options)
    load_before = os.getloadavg()[0]
    server_cpu, client_cpu = cpu_seconds(server), time.process_time()
    started = time.perf_counter()
    latencies = await send_all(port, key, options.events, options)
    seconds = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(server) - server_cpu, time.process_time() - client_cpu
    ordered = sorted(latencies)
    return {
        "events": options.events,
        "clients": options.clients,
        "idempotency_keys": options.idempotency_keys,
        "seconds": round(seconds, 3),
        "events_per_second": round(options.events / seconds),
        "latency_ms": {
            "p50": round(1000 * statistics.median(ordered), 2),
            "p99": round(1000 * ordered[int(len(ordered) * 0.99)], 2),
            "max": round(1000 * ordered[-1], 2),
        },
        "published": WARM_UP + options.events,
        "api_cpu_ms_per_event": round(1000 * server_cpu / options.events, 3),
        "api_cpu_cores": round(server_cpu / seconds, 2),
        "client_cpu_cores": round(client_cpu / seconds, 2),
        "load_average": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }


def cpu_seconds(process: psutil.Process) -> float:
    """User and system CPU time of every thread of ``process`` so far."""
    times = process.cpu_times()
    return times.user + times.system


async def send_all(port: int, key: str, count: int, options: argparse.Namespace) -> list[float]:
    remaining = iter(range(count))
    latencies: list[float] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in remaining:
            request = publish_request(key, n, idempotency_key=options.idempotency_keys)
            sent = time.perf_counter()
            writer.write(request)
            status, body = await read_response(reader)
            latencies.append(time.perf_counter() - sent)
            if status != 202:
                raise SystemExit(f"api_publish: {status} {body.decode(errors='replace')}")
        writer.close()

    await asyncio.gather(*(connection() for _ in range(options.clients)))
    return latencies


def publish_request(key: str, n: int, *, idempotency_key: bool) -> bytes:
    event_id = f"evt_{uuid.uuid4().hex}"
    body = json.dumps(
        {
            "id": event_id,
            "type": "bench.order.created",
            "timestamp": "2024-05-01T12:00:00Z",
            "data": {"n": n, "note": "benchmark event"},
        }
    ).encode()
    extra = f"Idempotency-Key: {event_id}\r\n" if idempotency_key else ""
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) != b"\r\n":
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


def stored_and_delete(amqp_url: str, name: str) -> int:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    stored: int = channel.queue_declare(f"{name}.events", passive=True).method.message_count
    connection.close()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from support.topology import delete_topology as d; d(*sys.argv[1:])",
            amqp_url,
            name,
            name,
        ],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
    )
    return stored


def report(results: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, indent=2))
        return
    latency = results["latency_ms"]
    print(
        f"POST /v1/events  {results['events']} events, {results['clients']} clients"
        f"{' with Idempotency-Key' if results['idempotency_keys'] else ''}: {results['seconds']:.3f} s, "
        f"{results['events_per_second']} events/s; latency p50 {latency['p50']} ms, p99 {latency['p99']} ms, "
        f"max {latency['max']} ms"
    )
    print(
        f"API CPU {results['api_cpu_ms_per_event']} ms per event ({results['api_cpu_cores']} cores busy), "
        f"client {results['client_cpu_cores']} cores; load average {results['load_average']['before']} "
        f"before, {results['load_average']['after']} after"
    )
    print(f"stored in the events queue: {results['stored']} of {results['published']} published")


if __name__ == "__main__":
    main()
