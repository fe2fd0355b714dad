"""The console's templates: times in UTC with how long ago, payloads indented, every value escaped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from workers.console.render import ago, pretty_json, templates, when

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_a_time_is_shown_in_utc_with_how_long_ago_it_was() -> None:
    paris = timezone(timedelta(hours=1))
    shown = str(when(datetime(2026, 11, 28, 12, 55, tzinfo=paris), now=NOW))
    assert "2026-11-28 11:55:00 UTC" in shown
    assert "(5 min ago)" in shown
    assert 'datetime="2026-11-28T11:55:00+00:00"' in shown


def test_relative_times_use_the_largest_unit_and_say_when_a_time_is_ahead() -> None:
    assert ago(NOW - timedelta(days=3, hours=2), NOW) == "3 d ago"
    assert ago(NOW - timedelta(seconds=42), NOW) == "42 s ago"
    assert ago(NOW + timedelta(hours=2), NOW) == "in 2 h"
    assert ago(NOW, NOW) == "just now"


def test_no_time_is_a_dash_and_text_that_is_no_time_is_escaped() -> None:
    assert str(when(None)) == "—"
    assert str(when("<b>soon</b>")) == "&lt;b&gt;soon&lt;/b&gt;"


def test_a_json_payload_is_indented_and_anything_else_shown_as_it_is() -> None:
    assert pretty_json('{"a":{"b":1}}') == '{\n  "a": {\n    "b": 1\n  }\n}'
    assert pretty_json("not json") == "not json"


def test_every_template_escapes_what_it_is_given() -> None:
    page = templates.env.get_template("error.html").render(
        viewer=None, title="<b>", detail="<script>x()</script>"
    )
    assert "<script>x()" not in page
    assert "&lt;script&gt;x()&lt;/script&gt;" in page
    assert "<b>" not in page
