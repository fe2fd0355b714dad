"""One deadline per attempt, kept by every read, write, connect and TLS handshake beneath it.

httpcore times each network call on its own: a read waits up to the read
timeout, and the next read waits as long again. A server that sends its
headers a byte at a time, or one ``100 Continue`` after another, could hold an
attempt for many times ``HOOKLINE_HTTP_TIMEOUT``. So the request runs
:func:`within` its deadline, and :class:`DeadlineBackend` hands httpcore
streams that cut each call's timeout to what is left of it, and raise
httpcore's own timeout once nothing is left.

The deadline is per thread: httpcore's synchronous pool runs a request on the
caller's thread, and a pooled connection serves one request at a time.
"""

from __future__ import annotations

import ssl
import threading
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore

_local = threading.local()


@contextmanager
def within(deadline: float) -> Iterator[None]:
    """Network calls on this thread end by ``deadline`` (``time.monotonic()``) while inside."""
    outer = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = outer


def cut(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """``timeout``, cut to what is left of this thread's deadline; ``expired`` once nothing is."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, cut(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        timeout = cut(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """A network backend whose connects and streams keep the deadline of the request they serve."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = cut(timeout, httpcore.ConnectTimeout)
        return DeadlineStream(self._backend.connect_tcp(host, port, timeout, local_address, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)
