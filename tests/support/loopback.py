"""A raw TCP server on 127.0.0.1 for tests that play a server's side byte by byte."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """Runs ``handle`` on a thread of its own for each connection accepted; yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def accept_until_stopped() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept_until_stopped, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        listener.close()
