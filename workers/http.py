"""Outbound HTTP: one pooled httpx client per worker process, and one POST with a hard deadline.

httpx has per-phase timeouts but no overall one; a receiver that trickles its
body could hold a worker thread far longer than ``HOOKLINE_HTTP_TIMEOUT``. So
every phase gets the remaining budget and the body is read in chunks against
the deadline. At most ``MAX_RESPONSE_BYTES`` of a body are read: enough for
logs, never a whole huge or endless response.

httpx exceptions are mapped to the most specific :mod:`workers.errors` type,
chained with ``from``, so retry decisions read types, not strings.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from importlib.metadata import version

import httpx

from workers.errors import (
    ConnectFailure,
    DeliveryFailed,
    DeliveryTimeout,
    DnsFailure,
    TlsFailure,
)
from workers.settings import Settings

USER_AGENT = f"hookline/{version('hookline')}"
MAX_RESPONSE_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    duration: float
    location: str | None
    retry_after: str | None


def build_client(settings: Settings, *, max_connections: int = 100) -> httpx.Client:
    """The process's one client: a shared connection pool, no redirects followed."""
    timeout = httpx.Timeout(settings.http_timeout, connect=settings.http_connect_timeout)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.Client(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        headers={"user-agent": USER_AGENT},
        trust_env=False,  # proxy variables must not silently reroute webhooks
    )


def post(client: httpx.Client, url: str, *, headers: dict[str, str], body: bytes, timeout: float) -> Response:
    """POST ``body`` and read at most MAX_RESPONSE_BYTES of the answer, all within ``timeout`` seconds."""
    started = time.monotonic()
    deadline = started + timeout
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            excerpt = _read_excerpt(response, deadline)
    except httpx.HTTPError as exc:
        raise _classify(exc) from exc
    return Response(
        status=response.status_code,
        body=excerpt,
        duration=time.monotonic() - started,
        location=response.headers.get("location"),
        retry_after=response.headers.get("retry-after"),
    )


def _read_excerpt(response: httpx.Response, deadline: float) -> bytes:
    excerpt = bytearray()
    for chunk in response.iter_raw():
        excerpt += chunk[: MAX_RESPONSE_BYTES - len(excerpt)]
        if len(excerpt) >= MAX_RESPONSE_BYTES:
            break
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("response body not complete before the deadline")
    return bytes(excerpt)


def _classify(exc: httpx.HTTPError) -> DeliveryFailed:
    if isinstance(exc, httpx.TimeoutException):
        return DeliveryTimeout(f"timed out: {type(exc).__name__}")
    if isinstance(exc, httpx.ConnectError):
        cause = _root_cause(exc)
        if isinstance(cause, socket.gaierror):
            return DnsFailure(f"name resolution failed: {cause.strerror or cause}")
        if isinstance(cause, ssl.SSLError):
            return TlsFailure(f"TLS handshake failed: {getattr(cause, 'reason', None) or cause}")
        return ConnectFailure(f"connection failed: {cause}")
    return ConnectFailure(f"{type(exc).__name__}: {exc}")


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment] # loop condition guarantees one is set
    return exc
