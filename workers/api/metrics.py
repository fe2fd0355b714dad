"""The API's metrics: requests by route template and status, and how long they took, on a port of their own.

The API is one process, so its metrics count in this process's own registry
(:data:`REGISTRY`), apart from the workers' multiprocess ones
(:mod:`workers.observability.metrics`). ``hookline api`` serves them on
``HOOKLINE_API_METRICS_PORT``, not on the API's port, so that Prometheus needs
no API key and the API's port answers nothing without one but the probes.

Labels stay bounded: ``route`` is the route's template (``/v1/subscriptions/{subscription_id}``,
never an id), or ``unmatched`` for a path no route serves; ``method`` is one
the API routes, or ``other``; ``status`` is a status code the API answers.
docs/metrics.md lists the series.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from workers.errors import MetricsServerError
from workers.observability.logs import get_logger
from workers.settings import Settings

log = get_logger(component="api_metrics")

REGISTRY = CollectorRegistry(auto_describe=True)
# A list is answered in milliseconds; a publish waits for the broker's confirm, up to its timeout.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
METHODS = frozenset({"GET", "HEAD", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"

REQUESTS = Counter(
    "hookline_api_requests",
    "Requests answered by hookline api, by method, route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
DURATION = Histogram(
    "hookline_api_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and route template.",
    ["method", "route"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)


class RequestMetrics:
    """ASGI middleware counting every HTTP request once it is answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it starts an answer

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            record(scope, status, time.perf_counter() - started)


def record(scope: Scope, status: int, seconds: float) -> None:
    route = scope.get("route")
    template = getattr(route, "path", None) or UNMATCHED
    method = scope["method"] if scope["method"] in METHODS else "other"
    REQUESTS.labels(method, template, str(status)).inc()
    DURATION.labels(method, template).observe(seconds)


def serve(settings: Settings) -> None:
    """Serve ``/metrics`` on ``HOOKLINE_API_METRICS_PORT`` from a daemon thread; port 0 serves nothing."""
    if settings.api_metrics_port == 0:
        return
    address = f"{settings.api_host}:{settings.api_metrics_port}"
    try:
        start_http_server(settings.api_metrics_port, settings.api_host, registry=REGISTRY)
    except OSError as exc:
        raise MetricsServerError(f"cannot serve metrics on {address}: {exc.strerror or exc}") from exc
    log.info("api_metrics_serving", address=address)
