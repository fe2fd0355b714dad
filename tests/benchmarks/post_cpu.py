"""CPU one webhook POST costs the calling thread: hookline's client against the clients it is compared with.

Not a test: it prints figures. It starts the bench's receiver on 127.0.0.1 (in a
process of its own, whose CPU is not counted) and POSTs a small signed-sized
webhook ``--requests`` times on one kept-alive connection through each client,
timing the calling thread's CPU (``time.thread_time``), best of ``--rounds``:

- ``hookline``: :func:`workers.outbound.http.post`, what a worker sends with
  (guarded connect, one deadline, ``http.client`` on the stream);
- ``httpcore``: httpcore's connection pool, what hookline sent with before;
- ``httpx``: ``httpx.Client.post``, what the bench's baseline loop sends with;
- ``http.client``: the standard library alone, with no guard and no deadline: the floor.

    .venv/bin/python tests/benchmarks/post_cpu.py [--requests 3000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import time
from collections.abc import Callable

import httpcore
import httpx

from workers.outbound import http as outbound
from workers.settings import Settings

BODY = b'{"type":"order.created","timestamp":"2026-11-29T10:00:00Z","data":{"order":1,"amount":1234}}'
HEADERS = {
    "content-type": "application/json",
    "webhook-id": "evt_0123456789abcdef0123456789abcdef",
    "webhook-timestamp": "1764410400",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}


def clients(port: int) -> dict[str, Callable[[], object]]:
    url = f"http://127.0.0.1:{port}/post-cpu"
    hookline = outbound.build_client(Settings(allow_private_networks=True))
    pool = httpcore.ConnectionPool()
    raw_headers = [
        (b"Host", f"127.0.0.1:{port}".encode()),
        *((k.encode(), v.encode()) for k, v in HEADERS.items()),
    ]

    def via_httpcore() -> None:
        with pool.stream("POST", url, headers=raw_headers, content=BODY) as response:
            for _ in response.iter_stream():
                pass

    client = httpx.Client()
    plain = http.client.HTTPConnection("127.0.0.1", port)

    def via_http_client() -> None:
        plain.request("POST", "/post-cpu", body=BODY, headers=HEADERS)
        plain.getresponse().read()

    return {
        "hookline": lambda: outbound.post(hookline, url, headers=HEADERS, body=BODY, timeout=5.0),
        "httpcore": via_httpcore,
        "httpx": lambda: client.post(url, content=BODY, headers=HEADERS),
        "http.client": via_http_client,
    }


def cpu_per_call(call: Callable[[], object], requests: int, rounds: int) -> float:
    """Microseconds of this thread's CPU per call, the best of ``rounds``."""
    call()  # connect first: the figure is for a kept-alive connection
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(requests):
            call()
        best = min(best, (time.thread_time() - started) / requests * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "workers.bench.receiver"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port = int(receiver.stdout.readline().split()[-1])
        figures = {
            name: round(cpu_per_call(call, args.requests, args.rounds), 1)
            for name, call in clients(port).items()
        }
    finally:
        assert receiver.stdin is not None
        receiver.stdin.close()  # the receiver stops when its stdin closes
        receiver.wait(timeout=10)
    if args.json:
        print(json.dumps({"us_cpu_per_post": figures}))
        return
    for name, micros in figures.items():
        print(f"{name:12} {micros:7.1f} µs of CPU per POST")


if __name__ == "__main__":
    main()
