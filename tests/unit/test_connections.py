"""Kept-alive connections: reused while the server keeps them, replaced when it does not, never half-read.

Each server here is a raw socket on loopback that answers every request on a
connection with the next scripted response, and counts the connections it
accepted, so a test sees whether the client kept a connection or opened another.
"""

from __future__ import annotations

import http.client as stdlib_http
import inspect
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import pytest

from tests.support.loopback import serving
from workers.errors import ConnectFailure
from workers.outbound import http
from workers.settings import Settings

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Server:
    port: int = 0
    accepted: int = 0
    closed: int = 0
    requests: list[bytes] = field(default_factory=list)


@contextmanager
def scripted(*responses: bytes, close_after_each: bool = False) -> Iterator[Server]:
    """A server answering the n-th request on any connection with ``responses[n]`` (the last repeats)."""
    server = Server()
    script = _forever(responses)
    turn = threading.Lock()

    def answer(connection: socket.socket) -> None:
        with turn:
            server.accepted += 1
        with connection, suppress(OSError):  # the client may close first: that is its right
            while request := _request(connection):
                with turn:
                    server.requests.append(request)
                    response = next(script)
                connection.sendall(response)
                if close_after_each:
                    break
        with turn:
            server.closed += 1

    with serving(answer) as port:
        server.port = port
        yield server


def _request(connection: socket.socket) -> bytes:
    """One whole request (head and Content-Length body), or b"" once the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        if not (chunk := connection.recv(65536)):
            return b""
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    length = (
        int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0]) if b"content-length: " in head else 0
    )
    while len(data) < len(head) + 4 + length:
        data += connection.recv(65536)
    return data


def _forever(responses: tuple[bytes, ...]) -> Iterator[bytes]:
    yield from responses
    while True:
        yield responses[-1]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def client() -> Iterator[http.DeliveryClient]:
    with http.build_client(Settings(allow_private_networks=True)) as built:
        yield built


def post(client: http.DeliveryClient, server: Server, path: str = "/in") -> http.Response:
    return http.post(client, f"http://127.0.0.1:{server.port}{path}", headers={}, body=b"{}", timeout=2.0)


def test_one_connection_carries_one_post_after_another() -> None:
    with scripted(OK) as server, http.build_client(Settings(allow_private_networks=True)) as client:
        answers = [post(client, server) for _ in range(3)]
    assert [(each.status, each.body) for each in answers] == [(200, b"ok")] * 3
    assert server.accepted == 1


def test_connections_past_the_idle_bound_are_closed_not_kept() -> None:
    settings = Settings(allow_private_networks=True)
    with scripted(OK) as server, http.build_client(settings, max_kept_alive=1) as client:
        origin = ("http", "127.0.0.1", server.port)
        first, second = (client.pool.checkout(origin, connect_timeout=2.0, timeout=2.0) for _ in range(2))
        client.pool.checkin(origin, first)
        client.pool.checkin(origin, second)  # one is idle already: this one is closed
        wait_until(lambda: server.closed == 1)
        assert client.pool.checkout(origin, connect_timeout=2.0, timeout=2.0) is first
        assert server.accepted == 2


def test_a_connection_the_server_closed_while_idle_is_replaced_not_written_to(
    client: http.DeliveryClient,
) -> None:
    with scripted(OK, close_after_each=True) as server:
        assert post(client, server).status == 200
        wait_until(lambda: server.closed == 1)  # idle: the server is done with it before the next POST
        assert post(client, server).status == 200
    assert server.accepted == 2


def test_a_response_that_ends_the_connection_is_read_whole_and_the_connection_not_kept(
    client: http.DeliveryClient,
) -> None:
    closing = b"HTTP/1.1 503 Busy\r\nConnection: close\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy"
    with scripted(closing, OK) as server:
        first = post(client, server)
        second = post(client, server)
    assert (first.status, first.body, first.retry_after) == (503, b"busy", "7")
    assert second.status == 200
    assert server.accepted == 2


def test_a_body_longer_than_the_excerpt_is_cut_and_its_connection_dropped() -> None:
    long = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
    settings = Settings(allow_private_networks=True, max_response_bytes=4)
    with scripted(long, OK) as server, http.build_client(settings) as client:
        assert post(client, server).body == b"0123"
        assert post(client, server).body == b"ok"
    assert server.accepted == 2  # the unread rest would have been taken for the next answer


def test_a_chunked_answer_is_read_and_its_connection_kept(client: http.DeliveryClient) -> None:
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3\r\n!!!\r\n0\r\n\r\n"
    with scripted(chunked, OK) as server:
        assert post(client, server).body == b"ok!!!"
        assert post(client, server).body == b"ok"
    assert server.accepted == 1


def test_a_redirect_is_answered_with_its_location_not_followed(client: http.DeliveryClient) -> None:
    moved = b"HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n"
    with scripted(moved) as server:
        answer = post(client, server)
    assert (answer.status, answer.location) == (301, "http://127.0.0.1:1/elsewhere")
    assert len(server.requests) == 1


def test_the_request_names_its_host_and_agent_and_carries_the_body_with_its_length(
    client: http.DeliveryClient,
) -> None:
    with scripted(OK) as server:
        http.post(
            client,
            f"http://127.0.0.1:{server.port}/in?x=%2F",
            headers={"webhook-id": "msg_1"},
            body=b'{"a":1}',
            timeout=2.0,
        )
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /in?x=%2F HTTP/1.1"
    assert f"Host: 127.0.0.1:{server.port}".encode() in lines
    assert any(line.startswith(b"User-Agent: hookline/") for line in lines)
    assert b"webhook-id: msg_1" in lines
    assert b"Content-Length: 7" in lines
    assert body == b'{"a":1}'


def test_interim_answers_before_the_real_one_are_passed_over_and_the_connection_kept(
    client: http.DeliveryClient,
) -> None:
    interim = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"
    with scripted(interim + b"HTTP/1.1 202 Accepted\r\nContent-Length: 4\r\n\r\nsoon", OK) as server:
        first = post(client, server)
        second = post(client, server)
    assert (first.status, first.body) == (202, b"soon")
    assert (second.status, second.body) == (200, b"ok")
    assert server.accepted == 1


def test_http_client_reads_each_status_line_through_the_method_hookline_overrides() -> None:
    # workers/outbound/connections.py passes over interim answers in _read_status, and reads their
    # headers with http.client's _read_headers: both private, both pinned here.
    begin = inspect.getsource(stdlib_http.HTTPResponse.begin)
    assert "self._read_status()" in begin
    assert "_read_headers(self.fp)" in begin
    assert list(inspect.signature(stdlib_http._read_headers).parameters) == ["fp"]  # type: ignore[attr-defined] # private


@pytest.mark.parametrize(
    "garbage",
    [b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", b""],
    ids=["not http", "too many headers", "closed without an answer"],
)
def test_an_answer_that_is_not_http_is_a_connect_failure(client: http.DeliveryClient, garbage: bytes) -> None:
    with scripted(garbage, close_after_each=True) as server, pytest.raises(ConnectFailure) as caught:
        post(client, server)
    assert caught.value.__cause__ is not None
