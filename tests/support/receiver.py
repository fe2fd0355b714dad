"""A webhook receiver on loopback that records what it gets, verified with standardwebhooks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from werkzeug import Request, Response
from werkzeug.serving import BaseWSGIServer, make_server


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)
    wall: float = field(default_factory=time.time)


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # The status to answer, or (status, headers).
    respond: Callable[[Received], int | tuple[int, dict[str, str]]] = lambda _: 200
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [request for request in self.requests if request.path == path]

    def __call__(self, environ: dict[str, object], start_response: Callable[..., object]) -> object:
        request = Request(environ)
        received = Received(
            request.path, {k.lower(): v for k, v in request.headers.items()}, request.get_data()
        )
        with self.lock:
            self.requests.append(received)
        answer = self.respond(received)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        return Response("", status=status, headers=headers)(environ, start_response)


@contextmanager
def receiver() -> Iterator[Receiver]:
    """A threaded HTTP server on 127.0.0.1 with a free port."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request drowns the output
    recorder = Receiver(url="")
    server: BaseWSGIServer = make_server("127.0.0.1", 0, recorder, threaded=True)
    recorder.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server(path: str = "/hang") -> Iterator[str]:
    """A server on 127.0.0.1 that accepts connections and never answers: every request times out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1024)
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            while True:
                held.append(server.accept()[0])
        except OSError:
            return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}{path}"
    finally:
        server.close()
        for connection in held:
            connection.close()
