"""The one error a bench run raises for a problem the user can fix (broker down, workers missing)."""

from __future__ import annotations


class BenchError(Exception):
    """The run cannot go on; the message is one line saying why (``hookline bench`` exits 2)."""
