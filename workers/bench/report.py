"""The figures of a bench run, from what the receiver recorded; and the table that shows them.

All parsing happens here, after the run: a receiver record is ``[wall, path,
webhook_id, body]``. A delivery is one (path, event id) pair; the path names
the subscription, and the event id is the ``webhook-id`` header (hookline) or
the body's ``id`` (the baseline POSTs the event as it is). Latency is receipt
wall time minus the event's ``timestamp``; a delivery received twice counts
once, at its first receipt, and as a duplicate.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workers.bench.load import Published

PERCENTILES = (50, 90, 99)
BUCKETS = (1.0, 0.5, 0.2, 0.1, 0.05)  # timeline bucket widths in seconds, the longest that fits
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Receipt:
    wall: float
    key: tuple[str, str]  # (path, event id): one delivery
    latency: float  # seconds from the event's timestamp to its receipt


@dataclass
class Phase:
    """What one phase (hookline, or the baseline) produced, before it is summarised."""

    events: int
    expected: int  # deliveries: events x subscriptions
    published: Published
    rows: list[list[Any]]
    rss: list[int] | None  # peak bytes per worker process; None when not measured
    errors: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float | None = None  # CPU used by the workers (or baseline processes) during the phase
    receiver_cpu_seconds: float | None = None
    log: bool | None = None  # the delivery log on (a recorder ran beside the workers); None: not known
    recorder_cpu_seconds: float | None = None
    log_caught_up_s: float | None = None  # from the last delivery to the log holding every record


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of ascending values: the least value with at least ``p`` % at or below it."""
    if not ordered:
        raise ValueError("no values")
    rank = math.ceil(round(p * len(ordered) / 100, 9))  # round: 90 % of 10 must be 9, not 9.000…01
    return ordered[min(max(rank, 1), len(ordered)) - 1]


def parse_timestamp(text: str) -> float:
    """An RFC 3339 timestamp (``2024-05-01T12:00:00.123Z``, any fraction, any offset) as Unix seconds."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.timestamp()


def parse_row(row: Sequence[Any]) -> Receipt:
    """One receiver record as a :class:`Receipt`; ValueError (or KeyError, TypeError) if it is not one."""
    wall, path, webhook_id, body = row
    payload = json.loads(body)
    event_id = webhook_id or payload["id"]
    latency = float(wall) - parse_timestamp(payload["timestamp"])
    return Receipt(float(wall), (str(path), str(event_id)), latency)


def receipts(rows: Iterable[Sequence[Any]]) -> tuple[list[Receipt], int]:
    """The parsed records, and how many could not be parsed."""
    parsed, bad = [], 0
    for row in rows:
        try:
            parsed.append(parse_row(row))
        except (ValueError, KeyError, TypeError):
            bad += 1
    return parsed, bad


def first_receipts(parsed: Iterable[Receipt]) -> list[Receipt]:
    """Each delivery once, at its first receipt, in order of arrival."""
    first: dict[tuple[str, str], Receipt] = {}
    for receipt in sorted(parsed, key=lambda r: r.wall):
        first.setdefault(receipt.key, receipt)
    return list(first.values())


def latency_ms(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50, p90, p99 and max of ascending latencies in seconds, in milliseconds."""
    if not latencies:
        return {**{f"p{p}": None for p in PERCENTILES}, "max": None}
    figures: dict[str, float | None] = {f"p{p}": _ms(percentile(latencies, p)) for p in PERCENTILES}
    figures["max"] = _ms(latencies[-1])
    return figures


def bucket_width(seconds: float) -> float:
    """1 s buckets, or finer ones for a short run, so that its timeline still has 20 or more."""
    return next((width for width in BUCKETS if seconds / width >= 20), BUCKETS[-1])


def timeline(kept: Sequence[Receipt], started: float, width: float) -> list[dict[str, Any]]:
    """Per bucket of ``width`` seconds since ``started``: deliveries/s in it, and their p50 and p99."""
    buckets: dict[int, list[float]] = {}
    for receipt in kept:
        buckets.setdefault(max(0, int((receipt.wall - started) / width)), []).append(receipt.latency)
    rows = []
    for index in range(max(buckets) + 1 if buckets else 0):
        ordered = sorted(buckets.get(index, []))
        figures = latency_ms(ordered)
        row: dict[str, Any] = {
            "t": round(index * width, 3),
            "deliveries_per_s": round(len(ordered) / width, 1),
        }
        rows.append(row | _keyed(figures, "p50", "p99"))
    return rows


def span(phase: Phase) -> float:
    """Seconds from the first publish to the last request received (duplicates included)."""
    last = max((float(row[0]) for row in phase.rows), default=phase.published.finished)
    return max(last - phase.published.started, 0.0)


def summarize(phase: Phase, width: float | None = None) -> dict[str, Any]:
    """A phase's figures, as ``--json`` prints them; ``width`` of the timeline's buckets (default: fitted)."""
    parsed, unparsed = receipts(phase.rows)
    kept = first_receipts(parsed)
    published = phase.published
    last = kept[-1].wall if kept else published.finished
    seconds = max(last - published.started, 1e-9)
    width = width or bucket_width(seconds)
    errors = {
        "missing": max(0, phase.expected - len(kept)),
        "publish_failed": published.failed,
        "unparsed": unparsed,
        **phase.errors,
    }
    return {
        "events": phase.events,
        "deliveries_expected": phase.expected,
        "deliveries": len(kept),
        "duplicates": len(parsed) - len(kept),
        "publish_rate": round(published.rate, 1),
        "publish_seconds": round(published.finished - published.started, 3),
        "seconds": round(seconds, 3),
        "deliveries_per_s": round(len(kept) / seconds, 1),
        "latency_ms": latency_ms(sorted(receipt.latency for receipt in kept)),
        "worker_rss_mib": None if phase.rss is None else [round(peak / MIB, 1) for peak in phase.rss],
        "cpu_ms_per_delivery": {
            "workers": _per(phase.cpu_seconds, len(kept)),
            "receiver": _per(phase.receiver_cpu_seconds, len(kept)),
            "recorder": _per(phase.recorder_cpu_seconds, len(kept)),
        },
        "log": phase.log,
        "log_caught_up_s": phase.log_caught_up_s,
        "errors": errors,
        "timeline_bucket_s": width,
        "timeline": timeline(kept, published.started, width),
    }


def ratio(measured: dict[str, Any], reference: dict[str, Any] | None) -> float | None:
    """One phase's deliveries/s over another's (hookline over the baseline, log on over log off).

    None without the other phase, or when it delivered nothing.
    """
    if reference is None or not reference["deliveries_per_s"]:
        return None
    return round(float(measured["deliveries_per_s"]) / float(reference["deliveries_per_s"]), 2)


def _per(cpu_seconds: float | None, deliveries: int) -> float | None:
    """Milliseconds of CPU per delivery, or None if not measured (or nothing was delivered)."""
    if cpu_seconds is None or not deliveries:
        return None
    return round(cpu_seconds * 1000 / deliveries, 3)


def _keyed(figures: dict[str, float | None], *names: str) -> dict[str, float | None]:
    return {f"{name}_ms": figures[name] for name in names}


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
