"""The bench's figures: percentiles, timestamp parsing, deliveries counted once, timelines, the table."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from workers.bench.load import Published
from workers.bench.report import (
    Phase,
    bucket_width,
    parse_row,
    parse_timestamp,
    percentile,
    ratio,
    receipts,
    summarize,
    timeline,
)
from workers.bench.table import render

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()


def stamp(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def hook_row(wall: float, event_id: str, sent: float, path: str = "/h/0") -> list[Any]:
    """A request as hookline sends it: the id in webhook-id, the body without it."""
    body = json.dumps({"type": "bench.x", "timestamp": stamp(sent), "data": {}})
    return [T0 + wall, path, event_id, body]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 11)]
    assert [percentile(values, p) for p in (10, 50, 90, 99, 100)] == [1.0, 5.0, 9.0, 10.0, 10.0]
    hundred = [float(n) for n in range(1, 101)]
    assert [percentile(hundred, p) for p in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert percentile([7.0], 99) == 7.0


def test_a_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00.123Z", T0 + 0.123),
        ("2024-05-01T12:00:00Z", T0),
        ("2024-05-01T12:00:00.000250Z", T0 + 0.00025),
        ("2024-05-01T14:00:00.5+02:00", T0 + 0.5),
    ],
)
def test_event_timestamps_parse_to_unix_seconds(text: str, expected: float) -> None:
    assert parse_timestamp(text) == pytest.approx(expected, abs=1e-6)


def test_a_timestamp_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        parse_timestamp("2024-05-01T12:00:00")


def test_the_event_id_comes_from_webhook_id_or_else_from_the_body() -> None:
    assert parse_row(hook_row(0.25, "evt_h", 0.0)).key == ("/h/0", "evt_h")
    baseline = [T0 + 1, "/b", None, json.dumps({"id": "evt_b", "timestamp": stamp(0.5), "type": "x"})]
    receipt = parse_row(baseline)
    assert receipt.key == ("/b", "evt_b")
    assert receipt.latency == pytest.approx(0.5, abs=1e-6)


def test_records_that_are_not_webhooks_are_counted_not_raised() -> None:
    good = hook_row(1, "evt_1", 0)
    parsed, bad = receipts([good, [T0, "/b", None, "not json"], [T0, "/b", None, "{}"], [T0, "/b"]])
    assert (len(parsed), bad) == (1, 3)


def published(events: int) -> Published:
    return Published(events=events, failed=0, started=T0, finished=T0 + 0.5)


def test_a_delivery_received_twice_counts_once_at_its_first_receipt() -> None:
    rows = [
        hook_row(0.010, "evt_1", 0.0),
        hook_row(0.030, "evt_2", 0.0),
        hook_row(0.040, "evt_1", 0.0),  # a redelivery
        hook_row(0.020, "evt_1", 0.0, path="/h/1"),  # the same event for another subscription
    ]
    figures = summarize(Phase(events=2, expected=4, published=published(2), rows=rows, rss=None))
    assert (figures["deliveries"], figures["duplicates"], figures["errors"]["missing"]) == (3, 1, 1)
    assert figures["seconds"] == pytest.approx(0.030, abs=1e-3)  # first publish to the last first receipt
    assert figures["deliveries_per_s"] == pytest.approx(100.0, rel=0.01)
    assert figures["latency_ms"] == {"p50": 20.0, "p90": 30.0, "p99": 30.0, "max": 30.0}


def test_the_summary_carries_rss_in_mib_cpu_per_delivery_and_the_phase_s_own_errors() -> None:
    rows = [hook_row(0.1, "evt_1", 0.0)]
    peaks = [64 * 1024 * 1024, 100 * 1024 * 1024]
    phase = Phase(1, 1, published(1), rows, rss=peaks, errors={"dead_letters": 2})
    phase.cpu_seconds, phase.receiver_cpu_seconds = 0.5, 0.05
    figures = summarize(phase)
    assert figures["worker_rss_mib"] == [64.0, 100.0]
    assert figures["cpu_ms_per_delivery"] == {"workers": 500.0, "receiver": 50.0, "recorder": None}
    assert figures["errors"] == {"missing": 0, "publish_failed": 0, "unparsed": 0, "dead_letters": 2}


def test_a_run_where_nothing_arrived_has_no_latency_and_everything_missing() -> None:
    figures = summarize(Phase(3, 3, published(3), rows=[], rss=None))
    assert figures["deliveries"] == 0
    assert figures["errors"]["missing"] == 3
    assert set(figures["latency_ms"].values()) == {None}
    assert figures["timeline"] == []


def test_the_timeline_has_a_row_per_bucket_including_empty_ones() -> None:
    kept, _ = receipts([hook_row(0.1, "a", 0.0), hook_row(0.2, "b", 0.1), hook_row(2.5, "c", 2.4)])
    rows = timeline(kept, T0, 1.0)
    assert [row["deliveries_per_s"] for row in rows] == [2.0, 0.0, 1.0]
    assert rows[1]["p50_ms"] is None
    assert rows[2]["p99_ms"] == pytest.approx(100.0, abs=0.1)


def test_short_runs_get_finer_buckets_long_ones_one_second() -> None:
    assert bucket_width(120.0) == 1.0
    assert bucket_width(10.0) == 0.5
    assert bucket_width(1.0) == 0.05
    assert bucket_width(0.01) == 0.05


def test_the_ratio_is_hookline_over_baseline_and_absent_without_a_baseline() -> None:
    assert ratio({"deliveries_per_s": 900.0}, {"deliveries_per_s": 600.0}) == 1.5
    assert ratio({"deliveries_per_s": 900.0}, None) is None
    assert ratio({"deliveries_per_s": 900.0}, {"deliveries_per_s": 0.0}) is None


def test_the_table_shows_both_columns_errors_and_the_ratio() -> None:
    hookline = summarize(Phase(1, 1, published(1), [hook_row(0.1, "evt_1", 0.0)], rss=[70 * 1024 * 1024]))
    baseline = summarize(Phase(1, 1, published(1), [], rss=None))
    settings = {
        "events": 1,
        "subscriptions": 1,
        "rate": None,
        "processes": 1,
        "threads": 8,
        "running_workers": False,
    }
    lines = render({"settings": settings, "hookline": hookline, "baseline": baseline, "ratio": 1.25})
    text = "\n".join(lines)
    assert lines[0].startswith("1 events x 1 subscription(s), as fast as possible")
    assert lines[2].split() == ["hookline", "baseline"]
    assert "70" in text
    assert "not measured" in text
    assert "missing 1" in text
    assert lines[-1] == "hookline / baseline deliveries/s: 1.25x"


def test_at_a_stated_rate_the_ratio_says_to_compare_latencies_instead() -> None:
    figures = summarize(Phase(1, 1, published(1), [hook_row(0.1, "evt_1", 0.0)], rss=None))
    settings = {"events": 1, "subscriptions": 1, "rate": 50.0, "processes": 1, "threads": 8}
    lines = render({"settings": {**settings, "running_workers": True}, "hookline": figures, "ratio": 1.0})
    assert "at 50 events/s" in lines[0]
    assert "already running workers" in lines[0]
    assert lines[-1].endswith("(at a stated rate: compare the latencies; saturation needs no --rate)")


def test_with_the_log_measured_both_ways_the_table_shows_both_phases_the_recorder_and_their_ratio() -> None:
    rows = [hook_row(0.1, "evt_1", 0.0)]
    off = Phase(1, 1, published(1), rows, rss=None)
    off.log = False
    on = Phase(1, 1, published(1), rows, rss=None)
    on.log, on.recorder_cpu_seconds, on.log_caught_up_s = True, 0.02, 0.4
    settings = {"events": 1, "subscriptions": 1, "rate": None, "processes": 1, "threads": 8}
    result = {
        "settings": {**settings, "running_workers": False, "log": "both"},
        "hookline": summarize(on),
        "hookline_log_off": summarize(off),
        "log_ratio": 0.95,
    }
    lines = render(result)
    assert lines[0].endswith("delivery log both")
    assert lines[2].split() == ["hookline,", "log", "off", "hookline"]
    [recorder] = [line for line in lines if line.startswith("CPU per delivery: recorder")]
    assert recorder.split()[-3:] == ["not", "measured", "20"]  # log off: no recorder ran
    [log] = [line for line in lines if line.startswith("delivery log")]
    assert "off" in log
    assert "on, all written 0.4 s after the last delivery" in log
    assert lines[-1] == "hookline log on / log off deliveries/s: 0.95x (same run)"
