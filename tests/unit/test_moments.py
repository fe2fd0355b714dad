"""``--since`` and ``--until``: a duration ago, or an ISO 8601 time (UTC unless it says otherwise)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workers.cli.moments import parse_moment

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", NOW - timedelta(seconds=90)),
        ("30m", NOW - timedelta(minutes=30)),
        (" 2h ", NOW - timedelta(hours=2)),
        ("7d", NOW - timedelta(days=7)),
        ("2026-03-01T08:30:00Z", datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ("2026-03-01T08:30:00+02:00", datetime(2026, 3, 1, 6, 30, tzinfo=UTC)),
        ("2026-03-01T08:30:00", datetime(2026, 3, 1, 8, 30, tzinfo=UTC)),
        ("2026-03-01", datetime(2026, 3, 1, tzinfo=UTC)),
    ],
)
def test_a_moment_is_a_duration_ago_or_a_time_in_utc(text: str, expected: datetime) -> None:
    moment = parse_moment(text, NOW)

    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize("text", ["yesterday", "-2h", "2026-13-01", ""])
def test_anything_else_is_refused_naming_both_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"is neither a duration \(30m, 2h, 7d\) nor a time"):
        parse_moment(text, NOW)
