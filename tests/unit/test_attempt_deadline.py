"""An attempt never outlasts HOOKLINE_HTTP_TIMEOUT, however slowly each phase of it trickles in.

Each server here is a raw socket on loopback that plays one slow phase: the
headers a byte at a time, one ``100 Continue`` after another, a TLS handshake
that never finishes, a name that takes long to resolve. Every one of them
stays within a per-read timeout, and would hold a thread for many times the
budget if only each read were timed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from functools import partial

import pytest

from tests.support.loopback import serving
from workers.errors import DeliveryTimeout, DnsFailure
from workers.outbound import http
from workers.settings import Settings

BUDGET = 1.0
# Generous: the checks are about not taking many budgets, not about scheduling jitter.
ALLOWED = BUDGET + 0.75


def slow_server(play: Callable[[socket.socket], None]) -> AbstractContextManager[int]:
    """A loopback server that answers each connection with ``play``; yields its port."""
    return serving(partial(_play_then_close, play))


def _play_then_close(play: Callable[[socket.socket], None], connection: socket.socket) -> None:
    with connection:
        try:
            connection.recv(65536)  # the request
            play(connection)
        except OSError:
            pass  # the client gave up and closed: that is the point


def trickle(data: bytes, every: float) -> Callable[[socket.socket], None]:
    def play(connection: socket.socket) -> None:
        for byte in data:
            connection.sendall(bytes([byte]))
            time.sleep(every)

    return play


def attempt(
    port: int, *, scheme: str = "http", resolver: Callable[[str, int], Sequence[str]] | None = None
) -> float:
    """Seconds one POST took before it failed as it must; the failure is returned by raising."""
    settings = Settings(allow_private_networks=True)
    with http.build_client(settings, resolver=resolver or (lambda _host, _port: ["127.0.0.1"])) as client:
        started = time.monotonic()
        try:
            http.post(client, f"{scheme}://hooks.test:{port}/in", headers={}, body=b"{}", timeout=BUDGET)
        finally:
            took = time.monotonic() - started
    return took


def timed_failure(expected: type[Exception], run: Callable[[], float]) -> float:
    started = time.monotonic()
    with pytest.raises(expected):
        run()
    return time.monotonic() - started


def test_headers_sent_a_byte_at_a_time_are_cut_off_at_the_deadline() -> None:
    headers = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n"
    with slow_server(trickle(headers, every=0.05)) as port:
        assert timed_failure(DeliveryTimeout, lambda: attempt(port)) < ALLOWED


def test_one_interim_response_after_another_is_cut_off_at_the_deadline() -> None:
    def continues(connection: socket.socket) -> None:
        for _ in range(40):
            connection.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            time.sleep(0.1)

    with slow_server(continues) as port:
        assert timed_failure(DeliveryTimeout, lambda: attempt(port)) < ALLOWED


def test_a_tls_handshake_that_never_finishes_is_cut_off_at_the_deadline() -> None:
    def silent(_connection: socket.socket) -> None:
        time.sleep(10)  # the ClientHello was read above; no ServerHello ever comes

    with slow_server(silent) as port:
        assert timed_failure(DeliveryTimeout, lambda: attempt(port, scheme="https")) < ALLOWED


def test_a_name_that_takes_long_to_resolve_fails_as_dns_within_the_deadline() -> None:
    def slow_resolver(_host: str, _port: int) -> list[str]:
        time.sleep(5)
        return ["127.0.0.1"]

    with slow_server(trickle(b"HTTP/1.1 204 No Content\r\n\r\n", every=0)) as port:
        assert timed_failure(DnsFailure, lambda: attempt(port, resolver=slow_resolver)) < ALLOWED


def test_a_server_that_answers_in_time_is_not_cut_off() -> None:
    answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
    with slow_server(trickle(answer, every=0.001)) as port:
        assert attempt(port) < BUDGET
