"""Reading worker pods' and recorders' ``/metrics`` pages, for ``hookline status``.

A :class:`Sample` keeps, for the few series the status shows, the values summed
over every page read (a recorder's lag: the largest); two samples taken some
seconds apart give what happened in between (:meth:`Sample.since`).
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from workers.errors import ScrapeFailed

TIMEOUT_SECONDS = 5.0
MAX_PAGE_BYTES = 32 * 1024 * 1024
# sample name -> the label it is summed by ("" sums everything into one value)
SERIES = {
    "hookline_deliveries_total": "outcome",
    "hookline_delivery_attempts_total": "result",
    "hookline_deliveries_in_flight": "",
    "hookline_circuit_breakers_open": "",
    "hookline_worker_processes": "state",
    "hookline_recorder_records_written_total": "kind",
    "hookline_recorder_write_errors_total": "",
}
# Series whose largest value over the pages is kept, not their sum: how far behind the slowest one is.
LARGEST = {"hookline_recorder_lag_seconds"}
# Outcomes that end a delivery for good; `skipped` (subscription removed) is left out of the ratio.
FINISHED = ("delivered", "dead_lettered", "blocked")


@dataclass
class Sample:
    values: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, name: str, label: str, value: float) -> None:
        by_label = self.values.setdefault(name, {})
        if name in LARGEST:
            by_label[label] = max(by_label.get(label, value), value)
        else:
            by_label[label] = by_label.get(label, 0.0) + value

    def get(self, name: str) -> dict[str, float]:
        return dict(self.values.get(name, {}))

    def since(self, earlier: Sample) -> Sample:
        """What the counters gained since ``earlier``; a counter that went down (a restart) counts afresh."""
        delta = Sample()
        for name, by_label in self.values.items():
            before = earlier.values.get(name, {})
            for label, value in by_label.items():
                gained = value - before.get(label, 0.0)
                delta.add(name, label, gained if gained >= 0 else value)
        return delta

    def success_ratio(self) -> float | None:
        """Delivered among finished deliveries, or None when none finished."""
        outcomes = self.get("hookline_deliveries_total")
        finished = sum(outcomes.get(outcome, 0.0) for outcome in FINISHED)
        return outcomes.get("delivered", 0.0) / finished if finished else None


def parse(page: str, into: Sample | None = None) -> Sample:
    sample = into or Sample()
    for family in text_string_to_metric_families(page):
        for series in family.samples:
            by = "" if series.name in LARGEST else SERIES.get(series.name)
            if by is not None:
                sample.add(series.name, series.labels.get(by, "") if by else "", series.value)
    return sample


def read(urls: list[str]) -> Sample:
    """The series of every page in ``urls``, summed."""
    sample = Sample()
    for url in urls:
        parse(_fetch(url), sample)
    return sample


def _fetch(url: str) -> str:
    if not url.startswith(("http://", "https://")):
        raise ScrapeFailed(f"not an http(s) URL: {url[:200]}")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 - scheme checked above
            return bytes(response.read(MAX_PAGE_BYTES)).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ScrapeFailed(f"cannot read {url[:200]}: {reason}") from exc
