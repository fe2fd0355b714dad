"""Outbound HTTP: one pooled httpx client per worker process, and one POST with a hard deadline.

httpx has per-phase timeouts but no overall one; a receiver that trickles its
body could hold a worker thread far longer than ``HOOKLINE_HTTP_TIMEOUT``. So
every phase gets the remaining budget and the body is read in chunks against
the deadline. At most ``HOOKLINE_MAX_RESPONSE_BYTES`` of a body are read: enough
for logs and dead letters, never a whole huge or endless response.

Connections are opened through the SSRF guard (:mod:`workers.netguard`) and TLS
certificates are always verified, against ``HOOKLINE_CA_BUNDLE`` when it is set.

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

from workers import netguard
from workers.errors import (
    ConnectFailure,
    DeliveryFailed,
    DeliveryTimeout,
    DnsFailure,
    TlsFailure,
)
from workers.settings import DEFAULT_MAX_RESPONSE_BYTES, Settings

USER_AGENT = f"hookline/{version('hookline')}"
# What is kept of a body when the client was not made by build_client (it has no setting).
MAX_RESPONSE_BYTES = DEFAULT_MAX_RESPONSE_BYTES

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


class DeliveryClient(httpx.Client):
    """An httpx client that also knows how much of a response body to keep."""

    def __init__(
        self, transport: httpx.BaseTransport, *, timeout: httpx.Timeout, max_response_bytes: int
    ) -> None:
        super().__init__(
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT},
            trust_env=False,  # proxy variables must not silently reroute webhooks
        )
        self.max_response_bytes = max_response_bytes


def build_client(
    settings: Settings, *, max_connections: int = 100, resolver: netguard.Resolver = netguard.resolve
) -> DeliveryClient:
    """The process's one client: a shared, guarded connection pool, no redirects followed.

    ``resolver`` turns a host name into addresses; tests pass a fake one.
    """
    backend = netguard.GuardedBackend(netguard.AddressPolicy.from_settings(settings), resolver)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    transport = netguard.GuardedTransport(backend, ssl_context=tls_context(settings), limits=limits)
    return DeliveryClient(
        transport,
        timeout=httpx.Timeout(settings.http_timeout, connect=settings.http_connect_timeout),
        max_response_bytes=settings.max_response_bytes,
    )


def tls_context(settings: Settings) -> ssl.SSLContext:
    """Verifies certificates and hostnames, against HOOKLINE_CA_BUNDLE or else certifi's store."""
    if settings.ca_bundle is None:
        return httpx.create_ssl_context(trust_env=False)
    return ssl.create_default_context(cafile=settings.ca_bundle)


def post(client: httpx.Client, url: str, *, headers: dict[str, str], body: bytes, timeout: float) -> Response:
    """POST ``body`` and read the start of the answer, all within ``timeout`` seconds.

    Raises a :class:`DeliveryFailed` subclass; BlockedAddress comes as it is
    from the guard below httpx.
    """
    started = time.monotonic()
    deadline = started + timeout
    limit = client.max_response_bytes if isinstance(client, DeliveryClient) else MAX_RESPONSE_BYTES
    try:
        with client.stream("POST", url, content=body, headers=headers) as response:
            excerpt = _read_excerpt(response, deadline, limit)
    except httpx.HTTPError as exc:
        raise _classify(exc) from exc
    return Response(
        status=response.status_code,
        body=excerpt,
        duration=time.monotonic() - started,
        location=response.headers.get("location"),
        retry_after=response.headers.get("retry-after"),
    )


def _read_excerpt(response: httpx.Response, deadline: float, limit: int) -> bytes:
    if limit == 0:
        return b""  # nothing is kept, so nothing is read: closing the stream drops the connection
    excerpt = bytearray()
    for chunk in response.iter_raw():
        excerpt += chunk[: limit - len(excerpt)]
        if len(excerpt) >= limit:
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
            return _tls_failure(cause)
        return ConnectFailure(f"connection failed: {cause}")
    return ConnectFailure(f"{type(exc).__name__}: {exc}")


def _tls_failure(cause: ssl.SSLError) -> TlsFailure:
    if isinstance(cause, ssl.SSLCertVerificationError):
        problem = _CERTIFICATE_PROBLEMS.get(cause.verify_code, "certificate not trusted")
        return TlsFailure(f"TLS certificate rejected: {problem} ({cause.verify_message})")
    return TlsFailure(f"TLS handshake failed: {cause.reason or cause}")


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment] # loop condition guarantees one is set
    return exc
