"""The SSRF guard: refused addresses are refused after resolution, before any socket is opened.

No test sends traffic anywhere but loopback: private and public addresses come
from a fake resolver, and opening a socket to them fails the test.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from ipaddress import ip_address, ip_network

import pytest
from pytest_httpserver import HTTPServer
from support.settings import one_line_error

from producer.settings import load
from workers.errors import BlockedAddress, DnsFailure, PermanentDeliveryFailure
from workers.outbound import http
from workers.outbound.http import DeliveryClient
from workers.outbound.netguard import AddressPolicy, GuardedBackend, address_class
from workers.pipeline.retry_policy import GiveUp, RetryPolicy
from workers.settings import Settings

LOOPBACK_ONLY = (ip_network("127.0.0.1/32"),)


def answering(*addresses: str) -> Callable[[str, int], Sequence[str]]:
    """A resolver that answers every name with ``addresses``."""
    return lambda _host, _port: list(addresses)


def must_not_resolve(host: str, _port: int) -> list[str]:
    pytest.fail(f"{host} was resolved, but a literal address needs no resolver")


@pytest.fixture
def no_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a TCP connection fails the test."""

    def refuse(address: object, *_: object, **__: object) -> socket.socket:
        pytest.fail(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda _sock, address: refuse(address))


def _post(client: DeliveryClient, url: str) -> http.Response:
    return http.post(client, url, headers={}, body=b"{}", timeout=2.0)


def _client(
    resolver: Callable[[str, int], Sequence[str]], settings: Settings | None = None
) -> DeliveryClient:
    return http.build_client(settings or Settings(), resolver=resolver)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.9.9.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("fec0::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("100.127.255.254", "shared (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, nothing binds to it
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("198.18.0.1", "non-global"),
        ("0.1.2.3", "non-global"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 around 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
    ],
)
def test_every_non_public_address_class_is_refused_and_named(address: str, kind: str) -> None:
    assert AddressPolicy().refusal(ip_address(address)) == kind


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_class(ip_address(address)) is None
    assert AddressPolicy().refusal(ip_address(address)) is None


def test_a_name_resolving_to_the_metadata_address_is_refused_without_connecting(no_connect: None) -> None:
    with _client(answering("169.254.169.254")) as client, pytest.raises(BlockedAddress) as caught:
        _post(client, "https://hooks.example.com/in?token=s3cret")
    message = str(caught.value)
    assert caught.value.reason == "blocked_address"
    assert "hooks.example.com" in message
    assert "link-local" in message
    assert "s3cret" not in message
    assert "/in" not in message


@pytest.mark.parametrize("address", ["10.0.0.1", "127.0.0.1", "::1", "192.168.0.10", "::ffff:10.1.2.3"])
def test_the_guard_is_on_by_default(no_connect: None, address: str) -> None:
    with _client(answering(address)) as client, pytest.raises(BlockedAddress):
        _post(client, "http://hooks.example.com/in")


def test_a_name_is_refused_when_any_of_its_addresses_is_refused(no_connect: None) -> None:
    # Connecting only to the public one would be safe, but which one a retry gets must not matter.
    with _client(answering("8.8.8.8", "10.0.0.1")) as client, pytest.raises(BlockedAddress) as caught:
        _post(client, "http://hooks.example.com/in")
    assert "10.0.0.1" in str(caught.value)


@pytest.mark.parametrize("url", ["http://10.0.0.1/in", "http://[::1]:8080/in", "http://[::ffff:a9fe:a9fe]/"])
def test_a_literal_address_in_the_url_is_checked_without_resolving(no_connect: None, url: str) -> None:
    with _client(must_not_resolve) as client, pytest.raises(BlockedAddress):
        _post(client, url)


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "127.1"])
def test_odd_spellings_of_loopback_are_refused_after_resolution(no_connect: None, host: str) -> None:
    # The real resolver: these are numeric forms, parsed locally without a DNS query.
    with http.build_client(Settings()) as client, pytest.raises(BlockedAddress) as caught:
        _post(client, f"http://{host}/in")
    assert "loopback" in str(caught.value)


def test_a_blocked_address_is_permanent_and_given_up_at_once() -> None:
    failure = BlockedAddress("refused")
    policy = RetryPolicy.from_settings(Settings())
    assert isinstance(failure, PermanentDeliveryFailure)
    assert policy.decide(failure, attempt=1, first_attempt_at=0.0, now=0.0) == GiveUp("permanent")


def test_a_name_that_does_not_resolve_stays_a_dns_failure(no_connect: None) -> None:
    def fail(_host: str, _port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with _client(fail) as client, pytest.raises(DnsFailure) as caught:
        _post(client, "http://hooks.example.invalid/in")
    assert caught.value.reason == "dns"
    assert "Name or service not known" in str(caught.value)


def test_a_name_with_no_address_is_a_dns_failure(no_connect: None) -> None:
    with _client(answering()) as client, pytest.raises(DnsFailure):
        _post(client, "http://hooks.example.invalid/in")


def test_an_allowed_network_lets_a_private_address_through(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_data("ok")
    with _client(answering("127.0.0.1"), Settings(allowed_networks=LOOPBACK_ONLY)) as client:
        assert _post(client, f"http://hooks.test:{httpserver.port}/in").status == 200


def test_an_allowed_network_does_not_let_other_private_addresses_through(no_connect: None) -> None:
    with (
        _client(answering("::1"), Settings(allowed_networks=LOOPBACK_ONLY)) as client,
        pytest.raises(BlockedAddress),
    ):
        _post(client, "http://hooks.test/in")


def test_allowing_private_networks_lifts_the_guard(httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/in").respond_with_data("ok")
    with _client(answering("127.0.0.1"), Settings(allow_private_networks=True)) as client:
        assert _post(client, f"http://hooks.test:{httpserver.port}/in").status == 200


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Records every address a connection is opened to (loopback only, in these tests)."""
    opened: list[tuple[str, int]] = []
    real = socket.create_connection

    def record(
        address: tuple[str, int], timeout: float | None = None, source_address: tuple[str, int] | None = None
    ) -> socket.socket:
        opened.append(address)
        return real(address, timeout, source_address=source_address)

    monkeypatch.setattr(socket, "create_connection", record)
    return opened


def test_the_connection_goes_to_the_checked_address_under_the_original_host_name(
    httpserver: HTTPServer, connects: list[tuple[str, int]]
) -> None:
    # A rebinding resolver: the first answer passes the check, any later one would not.
    answers = iter(["127.0.0.1", "10.0.0.1", "10.0.0.1"])
    asked: list[str] = []

    def rebinding(host: str, _port: int) -> list[str]:
        asked.append(host)
        return [next(answers)]

    httpserver.expect_oneshot_request("/in").respond_with_data("ok")
    with _client(rebinding, Settings(allowed_networks=LOOPBACK_ONLY)) as client:
        assert _post(client, f"http://hooks.test:{httpserver.port}/in").status == 200
    request, _ = httpserver.log[0]
    assert asked == ["hooks.test"]
    assert connects == [("127.0.0.1", httpserver.port)]
    assert request.headers["host"] == f"hooks.test:{httpserver.port}"


def test_every_new_connection_resolves_and_checks_again(httpserver: HTTPServer) -> None:
    answers = iter(["127.0.0.1", "10.0.0.1"])
    backend = GuardedBackend(AddressPolicy(allowed_networks=LOOPBACK_ONLY), lambda _h, _p: [next(answers)])
    backend.connect_tcp("hooks.test", httpserver.port, timeout=1.0).close()
    with pytest.raises(BlockedAddress):
        backend.connect_tcp("hooks.test", httpserver.port, timeout=1.0)


def test_the_next_address_is_tried_when_one_refuses_the_connection(
    httpserver: HTTPServer, connects: list[tuple[str, int]]
) -> None:
    closed_address = "127.0.0.2"  # the receiver listens on 127.0.0.1 only
    policy = AddressPolicy(allowed_networks=(ip_network("127.0.0.0/8"),))
    backend = GuardedBackend(policy, answering(closed_address, "127.0.0.1"))
    backend.connect_tcp("hooks.test", httpserver.port, timeout=1.0).close()
    assert connects == [(closed_address, httpserver.port), ("127.0.0.1", httpserver.port)]


def test_allowed_networks_are_read_as_comma_separated_cidrs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKLINE_ALLOWED_NETWORKS", "10.20.0.0/16, 127.0.0.1/32,fd00::/8")
    settings = load(Settings)
    assert settings.allowed_networks == tuple(
        ip_network(net) for net in ("10.20.0.0/16", "127.0.0.1/32", "fd00::/8")
    )
    assert settings.allow_private_networks is False


@pytest.mark.parametrize("value", ["10.20.0.0/33", "10.20.1.0/16", "intranet", "10.0.0.0/8,,nope"])
def test_an_invalid_allowed_network_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_ALLOWED_NETWORKS", value)
    assert "HOOKLINE_ALLOWED_NETWORKS: not a CIDR network" in message


@pytest.mark.parametrize("value", ["0.0.0.0/0", "::/0", "10.0.0.0/8,0.0.0.0/0"])
def test_an_allowlist_entry_that_opens_every_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_ALLOWED_NETWORKS", value)
    assert "would open every address" in message


@pytest.mark.parametrize(
    ("value", "space"),
    [
        ("::ffff:10.0.0.0/104", "IPv4-mapped"),
        ("64:ff9b::/96", "NAT64"),
        ("64:ff9b::a00:0/120", "NAT64"),
        ("2002:a00::/24", "6to4"),
        ("::/1", "IPv4-mapped"),  # broad enough to hold a translation range
    ],
)
def test_an_allowlist_entry_in_ipv6_space_that_stands_for_ipv4_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str, space: str
) -> None:
    message = one_line_error(monkeypatch, "HOOKLINE_ALLOWED_NETWORKS", value)
    assert f"overlaps {space} space" in message
    assert "allow the IPv4 network it stands for" in message
