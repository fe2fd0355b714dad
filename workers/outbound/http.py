"""Outbound HTTP: one connection pool per worker process, and one POST with a hard deadline.

A webhook POST needs none of what httpx's ``Client`` adds (cookies, auth,
redirects, event hooks, request models), and it is the hottest path of a
worker. So requests go to hookline's own small pool of kept-alive connections
(:mod:`workers.outbound.connections`): sockets opened by httpcore's network
backend, HTTP/1.1 spoken by the standard library's ``http.client``. httpx
still parses each subscription URL, once.

Network calls have per-phase timeouts but no overall one, so a POST runs within
one deadline, ``HOOKLINE_HTTP_TIMEOUT`` after it started, that every network
call beneath it keeps (:mod:`workers.outbound.deadline`): name resolution,
connect, TLS, sending, interim responses, headers and body together. At most
``HOOKLINE_MAX_RESPONSE_BYTES`` of a body are read: enough for logs and dead
letters, never a whole huge or endless response.

Connections are opened through the SSRF guard (:mod:`workers.outbound.netguard`) and TLS
certificates are always verified, against ``HOOKLINE_CA_BUNDLE`` when it is set.
Redirects are never followed: a 3xx is returned like any other status.

httpcore's and http.client's exceptions are mapped to the most specific
:mod:`workers.errors` type, chained with ``from``, so retry decisions read
types, not strings.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version
from types import TracebackType
from typing import Self

import httpcore
import httpx

from producer.errors import root_cause
from workers.errors import (
    ConnectFailure,
    DeliveryFailed,
    DeliveryTimeout,
    DnsFailure,
    TlsFailure,
)
from workers.outbound import connections, deadline, netguard
from workers.settings import Settings

USER_AGENT = f"hookline/{version('hookline')}"

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code, in words.
_CERTIFICATE_PROBLEMS = {
    2: "unknown CA",  # unable to get issuer certificate
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "unknown CA (self-signed certificate)",
    19: "unknown CA (self-signed certificate in the chain)",
    20: "unknown CA",  # unable to get local issuer certificate
    21: "unknown CA",  # unable to verify the first certificate
    23: "certificate revoked",
    26: "certificate not meant for a TLS server",
    62: "hostname mismatch",
    64: "IP address mismatch",
}


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    duration: float
    location: str | None
    retry_after: str | None


class DeliveryClient:
    """The process's connection pool, and how much of a response body to keep."""

    def __init__(
        self, pool: connections.ConnectionPool, *, connect_timeout: float, max_response_bytes: int
    ) -> None:
        self.pool = pool
        self.connect_timeout = connect_timeout
        self.max_response_bytes = max_response_bytes

    def close(self) -> None:
        self.pool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def build_client(
    settings: Settings, *, max_kept_alive: int = 100, resolver: netguard.Resolver = netguard.resolve
) -> DeliveryClient:
    """The process's one client: a shared pool of guarded connections, at most ``max_kept_alive`` idle.

    Each thread holds one connection while it makes a request, so the threads
    bound how many are open at once. ``resolver`` turns a host name into
    addresses; tests pass a fake one.
    """
    guarded = netguard.GuardedBackend(netguard.AddressPolicy.from_settings(settings), resolver)
    backend = deadline.DeadlineBackend(guarded)
    pool = connections.ConnectionPool(backend, tls_context(settings), max_idle=max_kept_alive)
    return DeliveryClient(
        pool, connect_timeout=settings.http_connect_timeout, max_response_bytes=settings.max_response_bytes
    )


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifies certificates and hostnames, against HOOKLINE_CA_BUNDLE or else certifi's store."""
    if settings.ca_bundle is None:
        return httpx.create_ssl_context(trust_env=False)
    return ssl.create_default_context(cafile=settings.ca_bundle)


@dataclass(frozen=True, slots=True)
class _Target:
    origin: connections.Origin
    path: str  # the request target, percent-encoded as httpx parsed it
    headers: dict[str, str]  # Host (IPv6 literals bracketed) and User-Agent; shared, never changed


@lru_cache(maxsize=4096)
def _target(url: str) -> _Target:
    # httpx parses: IDNA host names, IPv6 literals, percent-encoding. Once per URL, not per request.
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https"):
        raise ConnectFailure(f"unsupported URL: scheme {parsed.scheme!r} is not http or https")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    origin = (parsed.scheme, parsed.raw_host.decode("ascii"), port)
    host = parsed.netloc.decode("ascii")
    return _Target(origin, parsed.raw_path.decode("ascii"), {"Host": host, "User-Agent": USER_AGENT})


def post(
    client: DeliveryClient, url: str, *, headers: dict[str, str], body: bytes, timeout: float
) -> Response:
    """POST ``body`` and read the start of the answer, all within ``timeout`` seconds.

    Raises a :class:`DeliveryFailed` subclass; BlockedAddress comes as it is
    from the guard below the connections.
    """
    started = time.monotonic()
    target = _target(url)
    try:
        with deadline.within(started + timeout):
            answer = _exchange(client, target, {**target.headers, **headers}, body, timeout)
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise _classify(exc) from exc
    except http.client.HTTPException as exc:
        raise ConnectFailure(f"{type(exc).__name__}: {exc}") from exc
    return Response(
        status=answer.status,
        body=answer.body,
        duration=time.monotonic() - started,
        location=answer.headers.get("location"),
        retry_after=answer.headers.get("retry-after"),
    )


def _exchange(
    client: DeliveryClient, target: _Target, headers: dict[str, str], body: bytes, timeout: float
) -> connections.Answer:
    connection = client.pool.checkout(target.origin, connect_timeout=client.connect_timeout, timeout=timeout)
    reusable = False
    try:
        answer, reusable = connection.post(target.path, headers, body, client.max_response_bytes)
    finally:
        if reusable:
            client.pool.checkin(target.origin, connection)
        else:
            connection.close()
    return answer


def _classify(exc: Exception) -> DeliveryFailed:
    if isinstance(exc, httpcore.TimeoutException):
        return DeliveryTimeout(f"timed out: {type(exc).__name__}")
    if isinstance(exc, httpcore.ConnectError):
        cause = root_cause(exc)
        if isinstance(cause, socket.gaierror):
            return DnsFailure(f"name resolution failed: {cause.strerror or cause}")
        if isinstance(cause, ssl.SSLError):
            return _tls_failure(cause)
        return ConnectFailure(f"connection failed: {cause}")
    return ConnectFailure(f"{type(exc).__name__}: {exc}")


def _tls_failure(cause: ssl.SSLError) -> TlsFailure:
    if isinstance(cause, ssl.SSLCertVerificationError):
        problem = _CERTIFICATE_PROBLEMS.get(cause.verify_code, "certificate not trusted")
        return TlsFailure(f"TLS certificate rejected: {problem} ({cause.verify_message})")
    return TlsFailure(f"TLS handshake failed: {cause.reason or cause}")
