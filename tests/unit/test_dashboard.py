"""deploy/grafana/hookline.json reads only metrics hookline exports; docs/metrics.md documents them all."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from support.metrics import free_port
from support.promql import exported_sample_names, metric_names

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "hookline.json"
METRICS_DOC = REPO / "docs" / "metrics.md"
# Series Prometheus makes itself for every target.
PROMETHEUS_OWN = {"up"}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    return exported_sample_names(tmp_path_factory.mktemp("exposition"), free_port())


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [panel for panel in found if panel["type"] != "row"]


def test_the_metric_name_reader_skips_functions_labels_and_groupings() -> None:
    expr = 'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))) / b'
    assert metric_names(expr) == {"a_bucket", "b"}
    assert metric_names('sum without (state) (c{state="x"}) < on (job) group_left (le) d offset 5m') == {
        "c",
        "d",
    }


def test_every_panel_queries_something(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in panels(dashboard):
        exprs = [target["expr"] for target in panel["targets"]]
        assert exprs, f"panel {panel['title']!r} has no query"
        assert all(metric_names(expr) for expr in exprs), panel["title"]


def test_every_dashboard_query_reads_only_metrics_hookline_exports(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    unknown = {
        (panel["title"], name)
        for panel in panels(dashboard)
        for target in panel["targets"]
        for name in metric_names(target["expr"])
        if name not in exported | PROMETHEUS_OWN
    }
    assert unknown == set()


def test_the_dashboard_variables_read_exported_metrics(exported: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert queries
    for query in queries:
        match = re.fullmatch(r"label_values\((\w+), *\w+\)", query)
        assert match, query
        assert match.group(1) in exported


def test_the_dashboard_covers_what_operators_watch() -> None:
    used = {
        name
        for panel in panels(json.loads(DASHBOARD.read_text()))
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    for needed in (
        "hookline_deliveries_total",
        "hookline_delivery_latency_seconds_bucket",
        "hookline_delivery_attempt_duration_seconds_bucket",
        "hookline_retries_total",
        "hookline_dead_letters_total",
        "hookline_queue_messages",
        "hookline_circuit_breakers_open",
    ):
        assert needed in used


def test_the_metrics_doc_documents_every_exported_metric(exported: set[str]) -> None:
    families = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in exported}
    documented = set(re.findall(r"^\| `(hookline_[a-z_]+)`", METRICS_DOC.read_text(), flags=re.MULTILINE))
    assert {re.sub(r"_total$", "", name) for name in documented} >= families
