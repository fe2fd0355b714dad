"""Progress of a bench run on the terminal: one line per step, a counter line rewritten in place."""

from __future__ import annotations

import sys
import time
from typing import TextIO

REDRAW_EVERY = 0.2  # seconds: a steady line without writing to the terminal on every confirm


class Progress:
    """Writes to ``stream`` when enabled (a terminal and no ``--json``); otherwise does nothing."""

    def __init__(self, *, enabled: bool, stream: TextIO | None = None) -> None:
        self.enabled = enabled
        self._stream = stream or sys.stderr
        self._label = ""
        self._events = self._expected = self._published = self._received = 0
        self._drawn_at = 0.0

    def note(self, text: str) -> None:
        if self.enabled:
            self._stream.write(f"{text}\n")
            self._stream.flush()

    def start(self, label: str, events: int, expected: int) -> None:
        self._label, self._events, self._expected = label, events, expected
        self._published = self._received = 0
        self._drawn_at = 0.0

    def published(self, count: int) -> None:
        self._published += count
        self._draw()

    def received(self, count: int) -> None:
        self._received = count
        self._draw()

    def finish(self) -> None:
        self._draw(force=True)
        if self.enabled:
            self._stream.write("\n")

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._drawn_at < REDRAW_EVERY):
            return
        self._drawn_at = now
        self._stream.write(
            f"\r{self._label}: published {self._published}/{self._events} events, "
            f"received {self._received}/{self._expected} deliveries"
        )
        self._stream.flush()
