"""deploy/prometheus/alerts.yaml: valid, unit-tested with promtool, only real metrics, with runbooks."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.metrics import free_port
from support.promql import exported_sample_names, metric_names

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alerts.test.yaml"
RUNBOOKS = REPO / "docs" / "operations.md"
PROMETHEUS_OWN = {"up"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("promtool")
    assert executable, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    return subprocess.run([executable, *args], capture_output=True, text=True, timeout=120, check=False)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in result.stdout


def test_every_alert_passes_its_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_unit_tested() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == {rule["alert"] for rule in alerts()}


def test_every_alert_reads_only_metrics_hookline_exports(tmp_path: Path) -> None:
    exported = exported_sample_names(tmp_path, free_port())
    unknown = {
        (rule["alert"], name)
        for rule in alerts()
        for name in metric_names(rule["expr"])
        if name not in exported | PROMETHEUS_OWN
    }
    assert unknown == set()


@pytest.mark.parametrize("rule", alerts(), ids=lambda rule: rule["alert"])
def test_every_alert_points_to_its_runbook_in_the_operations_doc(rule: dict[str, Any]) -> None:
    anchor = f"alert-{rule['alert'].lower()}"
    assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{anchor}"
    runbooks = RUNBOOKS.read_text()
    section = runbooks.split(f'<a id="{anchor}"></a>', 1)
    assert len(section) == 2, f"docs/operations.md has no anchor {anchor}"
    assert rule["alert"] in section[1][:200], "the anchor sits at the alert's own entry"
    assert re.search(r"^## Alerts$", runbooks.split(anchor)[0], flags=re.MULTILINE)


def test_every_alert_has_a_severity_and_says_what_happened() -> None:
    for rule in alerts():
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]
