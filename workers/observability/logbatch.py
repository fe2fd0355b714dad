"""Log lines written in batches: one ``write()`` per few kilobytes of whole lines, not one per line.

A worker process logs a line per delivery, from many threads. Written one at
a time, each line would be its own system call, and each call hands the GIL
to another thread: at INFO, a noticeable share of every delivery's CPU. So
lines wait here for at most :data:`FLUSH_SECONDS` and go out together.

Lines are written whole, in chunks of at most ``PIPE_BUF`` bytes, so lines
from the worker processes that share one stderr pipe (a container's) never
interleave mid-line. The price: lines logged in the last
:data:`FLUSH_SECONDS` before a SIGKILL are lost. A clean shutdown drains them.
"""

from __future__ import annotations

import os
import select
import threading
import time
from typing import TextIO

FLUSH_SECONDS = 0.1
# Writes of up to PIPE_BUF bytes to a pipe are atomic (POSIX): another process's line cannot land inside.
CHUNK_BYTES = select.PIPE_BUF


class BatchedLines:
    """A write-only text stream for log lines over a file descriptor, flushed in the background."""

    def __init__(self, stream: TextIO, flush_seconds: float = FLUSH_SECONDS) -> None:
        self._fd = stream.fileno()
        self._tty = stream.isatty()
        self._pending = bytearray()
        self._lock = threading.Lock()
        self._flush_seconds = flush_seconds
        threading.Thread(target=self._drain_forever, name="log-lines", daemon=True).start()

    def isatty(self) -> bool:
        return self._tty

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text.encode("utf-8", "replace")
            if len(self._pending) >= CHUNK_BYTES:
                self._write_whole_lines()
        return len(text)

    def flush(self) -> None:
        """A no-op: structlog and logging call it after every line; :meth:`drain` does the work."""

    def drain(self) -> None:
        """Write every complete line now (at shutdown, and every FLUSH_SECONDS)."""
        with self._lock:
            self._write_whole_lines()

    def _drain_forever(self) -> None:
        while True:  # a daemon thread: it ends with the process, after DrainLogs wrote the rest
            time.sleep(self._flush_seconds)
            self.drain()

    def _write_whole_lines(self) -> None:
        end = self._pending.rfind(b"\n") + 1  # a line still being written stays for the next time
        ready = bytes(self._pending[:end])
        del self._pending[:end]
        for chunk in chunks(ready):
            view = memoryview(chunk)
            while view:
                view = view[os.write(self._fd, view) :]


def chunks(lines: bytes) -> list[bytes]:
    """``lines`` cut after newlines into pieces of at most CHUNK_BYTES (a longer line is its own piece)."""
    pieces: list[bytes] = []
    start = 0
    while start < len(lines):
        end = start + CHUNK_BYTES
        if end < len(lines):
            cut = lines.rfind(b"\n", start, end)
            end = cut + 1 if cut >= 0 else _line_end(lines, end)
        pieces.append(lines[start:end])
        start = end
    return pieces


def _line_end(lines: bytes, start: int) -> int:
    found = lines.find(b"\n", start)
    return len(lines) if found < 0 else found + 1
