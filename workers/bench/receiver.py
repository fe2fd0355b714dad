"""The bench's receiver: answers every webhook with an empty 200 and records when it arrived.

On a small machine the receiver competes for the same cores as the workers and
RabbitMQ, so whatever it spends is taken from what it measures. It therefore
runs in its own process, on a bare asyncio ``Protocol`` (no streams, no
framework), and does the least per request: find the end of the head, read
``Content-Length``, ``Connection`` and ``webhook-id``, slice the body, note
``time.time()`` and write a canned response. Bodies are parsed (JSON, the
event timestamp) only after the run, by :mod:`workers.bench.report`.

Why a minimal parser and not h11: h11 is a complete HTTP/1.1 state machine
in pure Python; on the development machine it took about 110 µs to parse a
worker's request and produce the answer, against about 6 µs for the few
slices below (the whole :meth:`Connection.data_received`). The clients are
known, httpx in the workers and in the baseline, and they send bodies with
``Content-Length`` and keep connections alive; what this parser does not
handle (chunked bodies, HTTP/2, malformed heads, oversized requests) is
answered with an error status, the connection closed, and counted as
``refused``, so a client doing something else shows in the figures instead of
going unnoticed. Pipelined requests and requests split across reads are
handled.

The parent talks to it over the same port: ``GET /_bench/count`` answers how
many requests were recorded; ``POST /_bench/take`` hands over the records as
JSON and forgets them. Run as ``python -m workers.bench.receiver``, it prints
the port it listens on and stops on SIGTERM or when its stdin closes (the
parent died).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from dataclasses import dataclass

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 16 * 1024 * 1024
CONTROL_PREFIX = b"/_bench/"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
    505: "HTTP Version Not Supported",
}

# (receipt wall time, path, webhook-id header or None, body)
Record = tuple[float, bytes, bytes | None, bytes]


def response(status: int, body: bytes = b"", *, close: bool = False) -> bytes:
    """A complete HTTP/1.1 response with a Content-Length."""
    head = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\ncontent-length: {len(body)}\r\n"
    if close:
        head += "connection: close\r\n"
    return head.encode("ascii") + b"\r\n" + body


OK = response(200)
OK_CLOSE = response(200, close=True)


class BadRequest(Exception):
    """A request this receiver does not take; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(slots=True)
class Head:
    method: bytes
    path: bytes
    length: int
    webhook_id: bytes | None
    close: bool


def parse_head(raw: bytes) -> Head:
    """The request line and the few headers the receiver needs, from a head without its final CRLFs."""
    lines = raw.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, path, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise BadRequest(505, "only HTTP/1.x")
    length, webhook_id, close = 0, None, version == b"HTTP/1.0"
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise BadRequest(400, "malformed header line")
        name = name.lower()
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit():
                raise BadRequest(400, "malformed content-length")
            length = int(value)
        elif name == b"webhook-id":
            webhook_id = value.strip()
        elif name == b"transfer-encoding":
            raise BadRequest(501, "only bodies with a content-length")
        elif name == b"connection":
            token = value.strip().lower()
            close = token == b"close" or (close and token != b"keep-alive")
    if length > MAX_BODY_BYTES:
        raise BadRequest(413, "body too large")
    return Head(method, path, length, webhook_id, close)


class Recorder:
    """What the receiver got; lives in the receiver process, read through the control paths."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.refused = 0

    def control(self, head: Head) -> bytes:
        if head.path == b"/_bench/count":
            return response(200, b"%d %d" % (len(self.records), self.refused), close=head.close)
        if head.path == b"/_bench/take" and head.method == b"POST":
            return response(200, self.take(), close=head.close)
        return response(404, close=head.close)

    def take(self) -> bytes:
        """The records so far as JSON ``[[wall, path, webhook_id, body], ...]``, then forgotten."""
        records, self.records = self.records, []
        rows = [
            [wall, path.decode("latin-1"), None if hook_id is None else hook_id.decode("latin-1"), body]
            for wall, path, hook_id, body in records
        ]
        return json.dumps(rows, default=lambda raw: raw.decode("utf-8", "replace")).encode()


class Connection(asyncio.Protocol):
    """One keep-alive client connection: parse, record, answer, repeat."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._buffer = bytearray()
        self._head: Head | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101 - a TCP server hands out Transports
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            while self._step():
                pass
        except BadRequest as exc:
            self._recorder.refused += 1
            self._finish(response(exc.status, str(exc).encode(), close=True), close=True)

    def _step(self) -> bool:
        """Handle one request if it is all in the buffer; whether to look for another."""
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise BadRequest(431, "head too large")
                return False
            self._head = parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        head = self._head
        if len(self._buffer) < head.length:
            return False
        body = bytes(self._buffer[: head.length])
        del self._buffer[: head.length]
        self._head = None
        if head.path.startswith(CONTROL_PREFIX):
            self._finish(self._recorder.control(head), close=head.close)
        else:
            self._recorder.records.append((time.time(), head.path, head.webhook_id, body))
            self._finish(OK_CLOSE if head.close else OK, close=head.close)
        return not head.close and bool(self._buffer)

    def _finish(self, answer: bytes, *, close: bool) -> None:
        assert self._transport is not None  # noqa: S101 - data only arrives after connection_made
        self._transport.write(answer)
        if close:
            self._transport.close()


async def serve(host: str, port: int) -> None:
    """Listen until SIGTERM, SIGINT or the end of stdin; print the bound port first."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    server = await loop.create_server(lambda: Connection(recorder), host, port, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    threading.Thread(target=_wait_for_eof, args=(loop, stop), daemon=True).start()
    await stop.wait()
    server.close()


def _wait_for_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    # The parent holds our stdin open: its end means the parent is gone, so stop too.
    sys.stdin.buffer.read()
    loop.call_soon_threadsafe(stop.set)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="hookline bench receiver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
