"""What threads waiting for a busy endpoint cost: CPU per request as more threads share one endpoint's cap.

Not a test: it prints figures. ``--threads`` threads make ``--requests``
requests to one endpoint through :class:`workers.outbound.isolation.Endpoints`
with a cap of ``--cap``: each takes a slot (waiting for one if none is free),
spends a little CPU, sleeps ``--request-ms`` with the GIL released (the
request), gives the slot back and spends a little more CPU (what a delivery
does after its answer). With more threads than the cap, the others wait, as
in ``hookline worker`` (8 threads, a cap of 4) when one endpoint gets all
the traffic: what waking them costs shows as CPU per request above that of
as many threads as the cap. No socket is opened.

    .venv/bin/python tests/benchmarks/endpoint_waiters.py [--threads 4 8 16] [--cap 4]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from workers.outbound.isolation import Endpoints

ENDPOINT = "https://one.example:443"


def main() -> None:
    options = parse_args()
    rows = [measure(threads, options) for threads in options.threads]
    if options.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(
            f"{row['threads']:>3} threads, cap {row['cap']}: {row['requests_per_s']:,.0f} requests/s, "
            f"{row['cpu_us_per_request']:.1f} us CPU per request, {row['refused']} refused"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--cap", type=int, default=4, help="HOOKLINE_ENDPOINT_MAX_IN_FLIGHT")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--request-ms", type=float, default=0.3)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args()


def measure(threads: int, options: argparse.Namespace) -> dict[str, float]:
    guard = Endpoints(max_in_flight=options.cap, failure_threshold=5, cooldown=30.0)
    left, refused = [options.requests], [0]
    counting = threading.Lock()

    def work() -> None:
        while True:
            with counting:
                if left[0] == 0:
                    return
                left[0] -= 1
            if guard.enter(ENDPOINT, wait=1.0) is not None:
                with counting:  # would go back to RabbitMQ
                    refused[0] += 1
                continue
            sum(range(300))  # preparing the request
            time.sleep(options.request_ms / 1000)
            guard.leave(ENDPOINT, None)
            sum(range(1500))  # what a delivery does after its answer

    started, cpu = time.perf_counter(), time.process_time()
    pool = [threading.Thread(target=work) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    elapsed, used = time.perf_counter() - started, time.process_time() - cpu
    return {
        "threads": threads,
        "cap": options.cap,
        "requests_per_s": round(options.requests / elapsed, 1),
        "cpu_us_per_request": round(used / options.requests * 1e6, 1),
        "refused": refused[0],
    }


if __name__ == "__main__":
    main()
