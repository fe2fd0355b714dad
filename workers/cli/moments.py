"""``--since`` and ``--until``: a moment given as a duration ago or as a time.

``90``, ``30m``, ``2h``, ``7d`` (:func:`workers.durations.parse_duration`)
mean that long before now; anything else must be an ISO 8601 time. A time
without a zone is UTC, and a date alone is its midnight, UTC.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from workers.durations import parse_duration


def parse_moment(text: str, now: datetime) -> datetime:
    """The moment ``text`` names, aware and in UTC; ValueError saying which forms are accepted."""
    stripped = text.strip()
    with contextlib.suppress(ValueError):
        return now - timedelta(seconds=parse_duration(stripped))
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        raise ValueError(
            f"{stripped!r} is neither a duration (30m, 2h, 7d) nor a time (2025-03-01T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class Moment(click.ParamType[datetime]):
    """A click parameter read by :func:`parse_moment`, against the clock at the time it is read."""

    name = "DURATION|TIME"

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            return parse_moment(str(value), self._clock())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


MOMENT = Moment()
