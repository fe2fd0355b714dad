"""TLS: certificates are verified, and a rejected one says why.

The receiver is an HTTPS server on 127.0.0.1 with certificates from a CA made
for the test (trustme). A fake resolver sends ``hooks.test`` to 127.0.0.1, so
the connection goes to the IP while TLS checks the certificate for the name.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from pathlib import Path

import httpcore
import pytest
import trustme
from support.settings import one_line_error

from producer.errors import ConfigurationError
from producer.settings import load
from workers.errors import RetryableDeliveryFailure, TlsFailure
from workers.outbound import http
from workers.settings import Settings

HOST = "hooks.test"


class _Handler(BaseHTTPRequestHandler):
    hosts: list[str]

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.hosts.append(self.headers["host"])
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_: object) -> None:
        pass  # quiet test output


@contextmanager
def https_receiver(cert: trustme.LeafCert | Path) -> Iterator[tuple[int, list[str]]]:
    """An HTTPS server on 127.0.0.1 presenting ``cert``; yields its port and the Host headers it got.

    ``cert`` is a trustme leaf, or a PEM file holding a certificate and its key.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if isinstance(cert, Path):
        context.load_cert_chain(cert)
    else:
        cert.configure_cert(context)
    hosts: list[str] = []
    handler = type("Handler", (_Handler,), {"hosts": hosts})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    # A failed handshake raises in accept(); socketserver drops that connection and goes on.
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def _to_loopback(_host: str, _port: int) -> list[str]:
    return ["127.0.0.1"]


def _deliver(settings: Settings, port: int) -> http.Response:
    guarded = settings.model_copy(update={"allowed_networks": (ip_network("127.0.0.1/32"),)})
    with http.build_client(guarded, resolver=_to_loopback) as client:
        return http.post(client, f"https://{HOST}:{port}/in", headers={}, body=b"{}", timeout=5.0)


def _rejection(settings: Settings, cert: trustme.LeafCert | Path) -> TlsFailure:
    with https_receiver(cert) as (port, hosts), pytest.raises(TlsFailure) as caught:
        _deliver(settings, port)
    assert hosts == []
    return caught.value


def test_a_certificate_from_the_ca_bundle_is_trusted_and_checked_for_the_host_name(
    ca: trustme.CA, ca_bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOKLINE_CA_BUNDLE", str(ca_bundle))
    with https_receiver(ca.issue_cert(HOST)) as (port, hosts):
        response = _deliver(load(Settings), port)
    assert (response.status, response.body) == (200, b"ok")
    assert hosts == [f"{HOST}:{port}"]


def test_a_certificate_from_an_unknown_ca_is_a_tls_failure(ca: trustme.CA) -> None:
    failure = _rejection(Settings(), ca.issue_cert(HOST))
    assert failure.reason == "tls"
    assert "unknown CA" in str(failure)
    assert isinstance(failure, RetryableDeliveryFailure)


def test_a_self_signed_certificate_is_an_unknown_ca(ca: trustme.CA, tmp_path: Path) -> None:
    # A CA's own certificate is self-signed: served by the receiver itself, trusted by nobody.
    self_signed = tmp_path / "self-signed.pem"
    self_signed.write_bytes(ca.cert_pem.bytes() + ca.private_key_pem.bytes())
    failure = _rejection(Settings(), self_signed)
    assert "unknown CA (self-signed certificate)" in str(failure)


def test_a_certificate_for_another_name_is_a_hostname_mismatch(ca: trustme.CA, ca_bundle: Path) -> None:
    failure = _rejection(Settings(ca_bundle=ca_bundle), ca.issue_cert("other.test"))
    assert "hostname mismatch" in str(failure)
    assert failure.reason == "tls"


def test_an_expired_certificate_is_named_expired(ca: trustme.CA, ca_bundle: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = ca.issue_cert(
        HOST, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
    )
    failure = _rejection(Settings(ca_bundle=ca_bundle), expired)
    assert "expired" in str(failure)


def test_the_tls_failure_is_chained_from_the_certificate_error(ca: trustme.CA) -> None:
    failure = _rejection(Settings(), ca.issue_cert(HOST))
    assert isinstance(failure.__cause__, httpcore.ConnectError)


def test_a_missing_ca_bundle_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_CA_BUNDLE", str(tmp_path / "missing.pem"))
    assert message.startswith("invalid setting HOOKLINE_CA_BUNDLE:")


def test_a_ca_bundle_without_certificates_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("not a certificate\n")
    monkeypatch.setenv("HOOKLINE_CA_BUNDLE", str(not_pem))
    with pytest.raises(ConfigurationError) as caught:
        load(Settings)
    assert "HOOKLINE_CA_BUNDLE: not a readable PEM bundle of CA certificates" in str(caught.value)
