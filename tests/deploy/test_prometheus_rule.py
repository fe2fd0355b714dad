"""The PrometheusRule in k8s/base is made from deploy/prometheus/alerts.yaml and stays in step with it."""

from __future__ import annotations

import subprocess
import sys

from deploy_support import ALERTS, K8S, REPO, load_yaml

SYNC = K8S / "sync-prometheusrule.py"
FIX = "run `.venv/bin/python k8s/sync-prometheusrule.py`"


def test_the_prometheus_rule_holds_exactly_the_groups_of_the_alert_rules_file() -> None:
    rule = load_yaml(K8S / "base" / "prometheusrule.yaml")
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == load_yaml(ALERTS)["groups"], f"out of sync with {ALERTS.name}: {FIX}"


def test_the_prometheus_rule_is_what_the_sync_script_writes() -> None:
    result = subprocess.run(
        [sys.executable, str(SYNC), "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr or FIX


def test_the_alert_rules_file_has_alerts() -> None:
    groups = load_yaml(ALERTS)["groups"]
    alerts = [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]
    assert alerts
    assert len(alerts) == len(set(alerts)), "alert names repeat"
