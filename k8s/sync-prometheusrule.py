"""Write k8s/base/prometheusrule.yaml from deploy/prometheus/alerts.yaml, the one alert rules file.

Prometheus (deploy/compose.yaml) loads the rules file as it is; prometheus-operator
wants the same groups inside a PrometheusRule object, which kustomize cannot
build from a file. Run this after changing the rules:

    .venv/bin/python k8s/sync-prometheusrule.py            # rewrite the PrometheusRule
    .venv/bin/python k8s/sync-prometheusrule.py --check    # exit 1 if it is out of date

tests/deploy/test_prometheus_rule.py fails while the two differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus" / "alerts.yaml"
TARGET = REPO / "k8s" / "base" / "prometheusrule.yaml"

HEADER = """\
# Generated from deploy/prometheus/alerts.yaml by k8s/sync-prometheusrule.py: do not edit.
# prometheus-operator loads these alert rules; docs/operations.md "Alerts" says what to do for each.
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, as people write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "hookline", "labels": {"app.kubernetes.io/name": "hookline"}},
        "spec": {"groups": groups},
    }


def render() -> str:
    rules = yaml.safe_load(RULES.read_text())
    body = yaml.dump(prometheus_rule(rules["groups"]), Dumper=_Dumper, sort_keys=False, width=110)
    return HEADER + body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    args = parser.parse_args()
    text = render()
    if args.check:
        if TARGET.read_text() != text:
            sys.stderr.write(f"{TARGET.relative_to(REPO)} is out of date: run k8s/sync-prometheusrule.py\n")
            return 1
        return 0
    TARGET.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
