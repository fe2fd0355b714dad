"""The broker on Kubernetes: three replicated nodes in production, and least-privilege users for hookline.

Production runs the RabbitmqCluster on three nodes, one per Kubernetes node, and
a disruption budget lets only one go at a time, so every quorum queue keeps its
majority. Workers, the setup Job and KEDA connect as users of their own (the
messaging-topology operator's User and Permission), never as the cluster's
default administrator. Offline, on the rendered overlays.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from deploy_support import REPO, Rendered, render

BROKER = "hookline-rabbitmq"
BROKER_PODS = {"app.kubernetes.io/name": BROKER}  # what the cluster operator labels its pods with


def references(value: Any) -> Iterator[str]:
    """Every Secret name ``value`` refers to, however deep (env, envFrom, volumes, KEDA's refs)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key in ("secretKeyRef", "secretRef", "secret") and isinstance(inner, dict):
                yield str(inner.get("name", inner.get("secretName", "")))
            elif key in ("secretTargetRef",) and isinstance(inner, list):
                yield from (str(each["name"]) for each in inner)
            else:
                yield from references(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from references(inner)


def permission(rendered: Rendered, name: str) -> dict[str, str]:
    spec = rendered.one("Permission", name)["spec"]
    assert spec["rabbitmqClusterReference"] == {"name": BROKER}
    assert spec["userReference"] == {"name": name}
    assert spec["vhost"] == "/"
    return dict(spec["permissions"])


def allows(pattern: str | None, resource: str) -> bool:
    # RabbitMQ matches permission regexes unanchored (re:run), as re.search does; left out matches nothing.
    return bool(pattern) and re.search(str(pattern), resource) is not None


# --- three nodes, one per machine, one down at a time ---------------------------------------------------


def test_production_runs_three_broker_nodes_and_dev_one() -> None:
    assert render("production").one("RabbitmqCluster", BROKER)["spec"]["replicas"] == 3
    assert render("production-hpa").one("RabbitmqCluster", BROKER)["spec"]["replicas"] == 3
    assert render("dev").one("RabbitmqCluster", BROKER)["spec"].get("replicas", 1) == 1


@pytest.mark.parametrize("overlay", ["production", "production-hpa"])
def test_no_two_production_broker_nodes_share_a_kubernetes_node(overlay: str) -> None:
    affinity = render(overlay).one("RabbitmqCluster", BROKER)["spec"]["affinity"]
    [term] = affinity["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"] == {"matchLabels": BROKER_PODS}


@pytest.mark.parametrize("overlay", ["production", "production-hpa"])
def test_a_disruption_budget_lets_one_broker_node_go_at_a_time(overlay: str) -> None:
    budgets = [
        pdb
        for pdb in render(overlay).of_kind("PodDisruptionBudget")
        if pdb["spec"]["selector"] == {"matchLabels": BROKER_PODS}
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"]["maxUnavailable"] == 1  # of three: the other two keep the majority


def test_a_lost_retries_leader_holds_retries_up_for_seconds_not_minutes(rendered: Rendered) -> None:
    advanced = rendered.one("RabbitmqCluster", BROKER)["spec"]["rabbitmq"]["advancedConfig"]
    found = re.search(r"\{dead_letter_worker_publisher_confirm_timeout, (\d+)\}", advanced)
    assert found is not None
    assert int(found[1]) <= 30_000


# --- least-privilege users ----------------------------------------------------------------------


def test_nothing_hookline_or_keda_runs_connects_as_the_default_administrator(rendered: Rendered) -> None:
    users = [
        *rendered.pod_owners(),
        *rendered.of_kind("ScaledObject"),
        *rendered.of_kind("TriggerAuthentication"),
    ]
    named = {secret for obj in users for secret in references(obj)}
    assert "hookline-credentials" in named  # the check sees the references there are
    assert not [secret for secret in named if secret.endswith("-default-user")]


def test_hookline_and_keda_have_users_of_their_own_with_no_administrator_tag(rendered: Rendered) -> None:
    users = {user["metadata"]["name"]: user["spec"] for user in rendered.of_kind("User")}
    assert set(users) == {"hookline", "hookline-keda"}
    assert users["hookline"].get("tags", []) == []  # messaging only, no management API
    assert users["hookline-keda"]["tags"] == ["management"]  # reads queue lengths, nothing more
    for spec in users.values():
        assert spec["rabbitmqClusterReference"] == {"name": BROKER}
        assert "importCredentialsSecret" not in spec  # the operator generates the password


def test_hookline_s_user_may_use_its_own_queues_and_exchange_and_nothing_else(rendered: Rendered) -> None:
    prefix, exchange = rendered.settings["HOOKLINE_QUEUE_PREFIX"], rendered.settings["HOOKLINE_EXCHANGE"]
    granted = permission(rendered, "hookline")
    ours = [
        f"{prefix}.events",
        f"{prefix}.retries",
        f"{prefix}.delay.65536s",
        f"{prefix}.events.XQ",
        exchange,
    ]
    for resource in ours:
        assert all(allows(granted[kind], resource) for kind in ("configure", "write", "read")), resource
    # Delays, retries and dead letters are published through the default exchange.
    assert allows(granted["write"], "amq.default")
    assert not allows(granted["configure"], "amq.default")
    for other in (f"other.{prefix}.events", f"{prefix}x.events", "amq.rabbitmq.trace", "another.events"):
        assert not any(allows(granted[kind], other) for kind in ("configure", "write", "read")), other


def test_keda_s_user_sees_the_vhost_and_may_touch_no_queue(rendered: Rendered) -> None:
    granted = permission(rendered, "hookline-keda")
    prefix = rendered.settings["HOOKLINE_QUEUE_PREFIX"]
    assert not any(allows(granted.get(kind), f"{prefix}.events") for kind in ("configure", "write", "read"))


def test_the_first_install_builds_the_credentials_from_those_users() -> None:
    install = (REPO / "docs" / "deployment.md").read_text().split("### First install")[1].split("\n### ")[0]
    assert "hookline-user-credentials" in install
    assert "hookline-keda-user-credentials" in install
    assert "default-user" not in install
