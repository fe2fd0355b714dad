"""The metric names a PromQL expression reads, and the sample names hookline really exports.

The names are taken from the code's own registries (the worker processes'
metrics and the collectors of the ``hookline worker`` parent), never from a
hand-kept list, so a renamed metric breaks every query that still uses the
old name.
"""

from __future__ import annotations

import re
from pathlib import Path

from prometheus_client.registry import Collector, CollectorRegistry

from workers.observability import heartbeat, metrics
from workers.ops import exporter
from workers.settings import Settings

_TOKEN = re.compile(
    r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])                     # [5m], [$__rate_interval], [1h:5m]
  | (?P<variable>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[smhdwy]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>[({])
  | (?P<close>[)}])
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE,
)
# Words that are PromQL, not metric names.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


def metric_names(expr: str) -> set[str]:
    """Metric names in ``expr``: identifiers that are not functions, keywords, labels or grouping lists."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup != "space"]
    names: set[str] = set()
    stack: list[str] = []  # what each open bracket is: "{" matchers, "group" a label list, "(" anything else
    for index, (kind, text) in enumerate(tokens):
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "open":
            previous = tokens[index - 1][1] if index else ""
            stack.append("{" if text == "{" else "group" if previous in GROUPING else "(")
        elif kind == "close" and stack:
            stack.pop()
        elif kind == "ident" and not (stack and stack[-1] in ("{", "group")) and _is_metric(text, following):
            names.add(text)
    return names


def _is_metric(name: str, following: str) -> bool:
    # Followed by "(" or by a grouping ("sum by (...)"), it is a function or an aggregation.
    return following != "(" and following not in GROUPING and name not in KEYWORDS | GROUPING


def _sample_names(name: str, kind: str) -> set[str]:
    if kind == "counter":
        return {f"{name}_total"}
    if kind == "histogram":
        return {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return {name}


def exported_sample_names(tmp_path: Path, unreachable_port: int) -> set[str]:
    """Every sample name ``hookline worker`` and ``hookline recorder`` can expose, from the real registries.

    The parent's collectors are built against a broker and a database that do
    not answer: they still describe every family they would fill.
    """
    (tmp_path / heartbeat.SUBDIRECTORY).mkdir(exist_ok=True)
    settings = Settings(
        amqp_url=f"amqp://guest:guest@127.0.0.1:{unreachable_port}/%2F",
        database_url=f"sqlite:///{tmp_path / 'absent.db'}",
    )
    parent = exporter.build(settings, tmp_path, expected=1)
    try:
        registries: list[CollectorRegistry | Collector] = [
            metrics.REGISTRY,
            parent.registry,
            metrics.recorder_registry(),  # what `hookline recorder` serves
        ]
        return {
            sample
            for registry in registries
            for family in registry.collect()
            for sample in _sample_names(family.name, family.type)
        }
    finally:
        parent.close()
