"""A bench result as a readable table: one column per phase, one row per figure."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Figures = dict[str, Any]


def _published(figures: Figures) -> str:
    failed = figures["errors"]["publish_failed"]
    return f"{figures['events']}" + (f" ({failed} failed)" if failed else "")


def _latency(figures: Figures) -> str:
    values = figures["latency_ms"]
    shown = ["-" if values[key] is None else f"{values[key]:g}" for key in ("p50", "p90", "p99", "max")]
    return " / ".join(shown)


def _rss(figures: Figures) -> str:
    peaks = figures["worker_rss_mib"]
    return "not measured" if peaks is None else ", ".join(f"{peak:g}" for peak in peaks) or "-"


def _optional(value: float | None) -> str:
    return "not measured" if value is None else f"{value:g}"


def _errors(figures: Figures) -> str:
    found = [f"{name} {count}" for name, count in figures["errors"].items() if count]
    if figures["duplicates"]:
        found.append(f"duplicates {figures['duplicates']}")
    return ", ".join(found) or "none"


def _log(figures: Figures) -> str:
    if figures["log"] is None:
        return "as the workers run"
    if not figures["log"]:
        return "off"
    caught_up = figures["log_caught_up_s"]
    if caught_up is None:
        return "on, not all written within the wait"
    return f"on, all written {caught_up:g} s after the last delivery"


ROWS: list[tuple[str, Callable[[Figures], str]]] = [
    ("events published", _published),
    ("publish rate, events/s", lambda f: f"{f['publish_rate']:.0f}"),
    ("deliveries received", lambda f: f"{f['deliveries']} of {f['deliveries_expected']}"),
    ("first publish to last receipt, s", lambda f: f"{f['seconds']:.2f}"),
    ("deliveries/s", lambda f: f"{f['deliveries_per_s']:.1f}"),
    ("latency p50 / p90 / p99 / max, ms", _latency),
    ("peak RSS per process, MiB", _rss),
    ("CPU per delivery: workers, ms", lambda f: _optional(f["cpu_ms_per_delivery"]["workers"])),
    ("CPU per delivery: receiver, ms", lambda f: _optional(f["cpu_ms_per_delivery"]["receiver"])),
    ("CPU per delivery: recorder, ms", lambda f: _optional(f["cpu_ms_per_delivery"]["recorder"])),
    ("delivery log", _log),
    ("errors", _errors),
]


def describe(settings: dict[str, Any]) -> str:
    """The run's settings in one line."""
    rate = "as fast as possible" if settings["rate"] is None else f"at {settings['rate']:g} events/s"
    workers = "already running workers" if settings["running_workers"] else "workers started by the bench"
    log = "" if settings["running_workers"] else f", delivery log {settings.get('log', 'on')}"
    return (
        f"{settings['events']} events x {settings['subscriptions']} subscription(s), {rate}; "
        f"{settings['processes']} process(es) x {settings['threads']} threads, {workers}{log}"
    )


# Phases in the order of their columns, and their headers.
COLUMNS = {"hookline_log_off": "hookline, log off", "hookline": "hookline", "baseline": "baseline"}


def render(result: dict[str, Any]) -> list[str]:
    """The lines to print for a result as :func:`workers.bench.run.run` returns it."""
    columns = [name for name in COLUMNS if result.get(name)]
    cells = [[label, *(cell(result[name]) for name in columns)] for label, cell in ROWS]
    header = ["", *(COLUMNS[name] for name in columns)]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    lines = [describe(result["settings"]), ""]
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *cells]
    ]
    if result.get("ratio") is not None:
        lines += ["", f"hookline / baseline deliveries/s: {result['ratio']:.2f}x"]
        if result["settings"]["rate"] is not None:
            # Both only keep up with the stated rate, so their throughputs are equal by design.
            lines[-1] += " (at a stated rate: compare the latencies; saturation needs no --rate)"
    if result.get("log_ratio") is not None:
        lines += ["", f"hookline log on / log off deliveries/s: {result['log_ratio']:.2f}x (same run)"]
    if result.get("plot"):
        lines.append(f"plot: {result['plot']}")
    return lines
