"""Kept-alive connections per origin, speaking HTTP/1.1 through the standard library's ``http.client``.

Sockets are opened by httpcore's network backend, wrapped in the SSRF guard
and the attempt's deadline (:mod:`workers.outbound.netguard`,
:mod:`workers.outbound.deadline`), and TLS is started on them the way
httpcore's own connections do it. What runs over them is ``http.client``: its
request writer and response parser cost about a third of the CPU of httpcore's
h11 state machine and pool, and a webhook POST is the hottest path of a
worker (docs/performance.md has the measurement). ``http.client`` reads and
writes through :class:`_StreamSocket`, so every read and write still goes
through the deadline-keeping stream, and a server trickling its headers or
sending ``100 Continue`` after ``100 Continue`` is cut off at the deadline.

A connection serves one request at a time and goes back to its origin's idle
list once its response was read to the end and the server did not ask to
close it; one that was left half-read, or that the server closed meanwhile
(found readable while idle), is closed instead.
"""

from __future__ import annotations

import http.client
import io
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import httpcore

Origin = tuple[str, str, int]  # scheme, host, port
SWITCHING_PROTOCOLS = 101  # a final answer: nothing follows it on HTTP/1.1 as it was spoken


class _StreamReader(io.RawIOBase):
    """The read side of a network stream, as the file ``http.client`` parses a response from."""

    def __init__(self, socket: _StreamSocket) -> None:
        self._socket = socket

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override] # io's stubs take a Buffer
        data = self._socket.stream.read(len(buffer), self._socket.timeout)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._socket.file_closed()
        super().close()


class _StreamSocket:
    """What ``http.client`` uses of a socket (``sendall``, ``makefile``, ``close``), over a network stream.

    As with a real socket, closing it while a response is still being read
    from a file it made (``http.client`` does that for a response that ends
    the connection) closes the stream only once that file is closed too.
    """

    def __init__(self, stream: httpcore.NetworkStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self._unsent: list[bytes] = []
        self._files = 0
        self._closed = False

    def sendall(self, data: bytes) -> None:
        # http.client sends the head and the body apart; one write saves a system call and a
        # packet, and the wait Nagle's algorithm puts on a second small one.
        self._unsent.append(bytes(data))

    def makefile(self, _mode: str) -> io.BufferedReader:
        # http.client asks for the file once the request is written: send it all now, then read.
        if self._unsent:
            unsent, self._unsent = b"".join(self._unsent), []
            self.stream.write(unsent, self.timeout)
        self._files += 1
        return io.BufferedReader(_StreamReader(self))

    def file_closed(self) -> None:
        self._files -= 1
        if self._closed and not self._files:
            self.stream.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if not self._files:
                self.stream.close()


class _Response(http.client.HTTPResponse):
    """``http.client``'s response, passing over every interim (1xx) answer, not only ``100 Continue``.

    A receiver may send ``102 Processing`` or ``103 Early Hints`` before its
    answer; ``http.client`` would take one for the answer itself. Each is read
    through the deadline-keeping stream like the rest, so an endless run of
    them ends at the attempt's deadline.
    """

    def _read_status(self) -> tuple[str, int, str]:
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc] # private, in the stubs as untyped
            if not 100 <= status < 200 or status == SWITCHING_PROTOCOLS:
                return version, status, reason
            http.client._read_headers(self.fp)  # type: ignore[attr-defined] # its headers, then the next answer


@dataclass
class Answer:
    """A response: status, headers (names lower-cased) and at most the first ``limit`` bytes of the body."""

    status: int
    headers: dict[str, str]
    body: bytes


class Connection:
    """One kept-alive connection to one origin."""

    def __init__(self, stream: httpcore.NetworkStream, timeout: float) -> None:
        self.socket = _StreamSocket(stream, timeout)
        # http.client never connects this one (its socket is set), and the request carries its own
        # Host header: the name given here is used for neither. A real host could be an IPv6
        # literal, which http.client's constructor would misread as host:port.
        self.http = http.client.HTTPConnection("hookline.invalid")
        self.http.response_class = _Response
        self._response: http.client.HTTPResponse | None = None
        self.http.sock = self.socket  # http.client uses only sendall, makefile and close

    def post(self, target: str, headers: Mapping[str, str], body: bytes, limit: int) -> tuple[Answer, bool]:
        """Send the request and read the answer; True with it if the connection can serve another."""
        self.http.request("POST", target, body=body, headers=headers)
        response = self._response = self.http.getresponse()
        if limit:
            excerpt = response.read(limit)
        else:
            excerpt = b""  # nothing is kept, so nothing is read, unless there is nothing to read
            if response.length == 0:
                response.read()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, excerpt)
        # Reusable only if the body was read to its end (a longer one is left unread: the connection
        # goes) and neither side asked to close.
        return answer, response.isclosed() and self.http.sock is not None

    def idle_and_open(self) -> bool:
        # A kept-alive socket that reads as readable while idle was closed by the server (or holds
        # data nobody asked for): either way it cannot carry the next request.
        return not self.socket.stream.get_extra_info("is_readable")

    def close(self) -> None:
        # A response that ends the connection holds its stream (http.client hands it over): close both.
        if self._response is not None:
            self._response.close()
        self.http.close()


class ConnectionPool:
    """Idle connections per origin; opens new ones through ``backend`` (guarded, deadline-keeping)."""

    def __init__(
        self, backend: httpcore.NetworkBackend, ssl_context: ssl.SSLContext, *, max_idle: int
    ) -> None:
        self._backend = backend
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._idle: dict[Origin, list[Connection]] = {}
        self._idle_count = 0  # across origins: checked on every checkin, so kept, not summed
        self._lock = threading.Lock()

    def checkout(self, origin: Origin, *, connect_timeout: float, timeout: float) -> Connection:
        """A kept-alive connection to ``origin`` if one is idle and open, else a new one."""
        while (kept := self._pop(origin)) is not None:
            if kept.idle_and_open():
                kept.socket.timeout = timeout
                return kept
            kept.close()
        return self._open(origin, connect_timeout, timeout)

    def checkin(self, origin: Origin, connection: Connection) -> None:
        """Keep ``connection`` for the next request to ``origin`` (closed if the pool is full)."""
        with self._lock:
            if self._idle_count < self._max_idle:
                self._idle.setdefault(origin, []).append(connection)
                self._idle_count += 1
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle, self._idle_count = self._idle, {}, 0
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _pop(self, origin: Origin) -> Connection | None:
        with self._lock:
            connections = self._idle.get(origin)
            if not connections:
                return None
            self._idle_count -= 1
            if len(connections) == 1:
                del self._idle[origin]  # an origin no longer sent to leaves nothing behind
            return connections.pop()

    def _open(self, origin: Origin, connect_timeout: float, timeout: float) -> Connection:
        scheme, host, port = origin
        stream = self._backend.connect_tcp(host, port, connect_timeout)
        if scheme == "https":
            try:
                stream = stream.start_tls(self._ssl_context, server_hostname=host, timeout=connect_timeout)
            except BaseException:
                stream.close()
                raise
        return Connection(stream, timeout)
