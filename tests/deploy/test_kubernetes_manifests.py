"""Every Kubernetes overlay renders, every object it renders is valid, and the manifests keep their promises.

Each test runs once per overlay under k8s/overlays. Built-in kinds are checked
against the Kubernetes OpenAPI schemas that kubernetes-validate bundles; the
CRDs (KEDA, prometheus-operator, RabbitMQ cluster operator) against the schemas
kept in tests/deploy/schemas. All offline.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from deploy_support import (
    OVERLAYS,
    REPO,
    SCHEMAS,
    WORKER_COMPONENTS,
    Rendered,
    container,
    image_user,
    worker_options,
)

# The oldest Kubernetes the manifests are written for (PodDisruptionBudget's
# unhealthyPodEvictionPolicy is GA from 1.31).
KUBERNETES_VERSION = "1.31"

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitoring.coreos.com_podmonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrule_v1.json",
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmq.com_rabbitmqcluster_v1beta1.json",
    ("rabbitmq.com/v1beta1", "User"): "rabbitmq.com_user_v1beta1.json",
    ("rabbitmq.com/v1beta1", "Permission"): "rabbitmq.com_permission_v1beta1.json",
}

# Ranges no subscriber legitimately lives in, which the egress rule to the internet must leave out.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10")
# Not private, but no webhook may reach them: benchmarking, IETF protocol assignments, multicast,
# reserved (240/4 holds the broadcast address).
UNDELIVERABLE_V4 = ("198.18.0.0/15", "192.0.0.0/24", "224.0.0.0/4", "240.0.0.0/4")
# IPv6 that reaches IPv4 space through a translator, link-local, unique-local and multicast.
UNDELIVERABLE_V6 = ("fc00::/7", "fe80::/10", "::ffff:0:0/96", "64:ff9b::/96", "2002::/16", "ff00::/8")

QUEUES_OF = {"fan-out": ["events"], "delivery": ["retries"], "recorder": ["log"]}
# Deployments that consume a queue and scale on it: the workers, and the recorder of the delivery log.
CONSUMERS = (*WORKER_COMPONENTS, "recorder")
RECORDER_METRICS_PORT = 9192  # `hookline recorder --metrics-port`


def crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[api_version, kind]).read_text())
    return jsonschema.Draft202012Validator(schema)


def label_selector_matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        present = expression["key"] in labels
        value = labels.get(expression["key"])
        operator = expression["operator"]
        if (
            (operator == "In" and value not in expression["values"])
            or (operator == "NotIn" and value in expression["values"])
            or (operator == "Exists" and not present)
            or (operator == "DoesNotExist" and present)
        ):
            return False
    return True


def pod_labels(pod_owner: dict[str, Any]) -> dict[str, str]:
    return pod_owner["spec"]["template"]["metadata"]["labels"]


def scaled_queues(rendered: Rendered, component: str) -> list[str]:
    """The queues whose length drives the component's replica count, under KEDA or an HPA."""
    scalers = [
        obj
        for obj in rendered.of_kind("ScaledObject")
        if obj["spec"]["scaleTargetRef"]["name"] == f"hookline-{component}"
    ]
    if scalers:
        return [trigger["metadata"]["queueName"] for trigger in scalers[0]["spec"]["triggers"]]
    hpas = [
        obj
        for obj in rendered.of_kind("HorizontalPodAutoscaler")
        if obj["spec"]["scaleTargetRef"]["name"] == f"hookline-{component}"
    ]
    assert hpas, f"{rendered.overlay}: nothing scales hookline-{component}"
    return [
        metric["external"]["metric"]["selector"]["matchLabels"]["queue"]
        for metric in hpas[0]["spec"]["metrics"]
    ]


def test_there_are_a_dev_and_a_production_overlay() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


# --- schemas -----------------------------------------------------------------------------------------


def test_every_rendered_object_is_valid_against_its_schema(rendered: Rendered) -> None:
    problems = []
    for obj in rendered.objects:
        what = f"{obj['kind']} {obj['metadata']['name']}"
        key = (obj["apiVersion"], obj["kind"])
        if key in CRD_SCHEMAS:
            problems += [f"{what}: {error.message}" for error in crd_validator(*key).iter_errors(obj)]
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{what}: no schema for {obj['apiVersion']} (a CRD without a schema in tests?)")
        except kubernetes_validate.ValidationError as error:
            problems.append(f"{what}: {'.'.join(map(str, error.path))}: {error.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("api_version", "kind", "broken"),
    [
        ("keda.sh/v1alpha1", "ScaledObject", {"spec": {"scaleTargetRef": {"name": "x"}, "trigers": []}}),
        ("keda.sh/v1alpha1", "TriggerAuthentication", {"spec": {"secretTargetRef": [{"parameter": "host"}]}}),
        ("monitoring.coreos.com/v1", "PodMonitor", {"spec": {"selector": {}, "podMetricsEndpoint": []}}),
        ("monitoring.coreos.com/v1", "PrometheusRule", {"spec": {"groups": [{"name": "g", "rules": [{}]}]}}),
        ("rabbitmq.com/v1beta1", "RabbitmqCluster", {"spec": {"replicas": "three"}}),
        ("rabbitmq.com/v1beta1", "User", {"spec": {"tags": ["administrator"]}}),
        (
            "rabbitmq.com/v1beta1",
            "User",
            {"spec": {"rabbitmqClusterReference": {"name": "r"}, "tags": ["root"]}},
        ),
        ("rabbitmq.com/v1beta1", "Permission", {"spec": {"vhost": "/", "user": "u", "permissions": {}}}),
        (
            "rabbitmq.com/v1beta1",
            "Permission",
            {
                "spec": {
                    "vhost": "/",
                    "permissions": {"reed": ".*"},
                    "rabbitmqClusterReference": {"name": "r"},
                }
            },
        ),
    ],
)
def test_the_crd_schemas_refuse_a_broken_object(api_version: str, kind: str, broken: dict[str, Any]) -> None:
    obj = {"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}, **broken}
    assert list(crd_validator(api_version, kind).iter_errors(obj))


# --- pods: security, resources, probes, shutdown -------------------------------------------------------


def test_every_container_runs_as_non_root_on_a_read_only_root_without_privileges(rendered: Rendered) -> None:
    for owner in rendered.pod_owners():
        pod = owner["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, owner["metadata"]["name"]
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", owner["metadata"]["name"]
        assert pod.get("automountServiceAccountToken") is False, owner["metadata"]["name"]
        for c in pod["containers"] + pod.get("initContainers", []):
            where = f"{owner['metadata']['name']}/{c['name']}"
            security = c["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert "add" not in security["capabilities"], where
            assert not security.get("privileged", False), where


def test_hookline_runs_as_the_image_user(rendered: Rendered) -> None:
    uid, gid = image_user()
    for owner in rendered.hookline_pod_owners():
        security = owner["spec"]["template"]["spec"]["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"]) == (uid, gid), owner["metadata"]["name"]


def test_every_container_requests_cpu_and_memory_and_is_limited_in_memory(rendered: Rendered) -> None:
    for owner in rendered.pod_owners():
        for c in owner["spec"]["template"]["spec"]["containers"]:
            resources = c["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), c["name"]
            assert "memory" in resources["limits"], c["name"]


def test_every_hookline_container_takes_its_settings_from_the_configmap_and_its_urls_from_the_secret(
    rendered: Rendered,
) -> None:
    settings_map = next(
        obj["metadata"]["name"]
        for obj in rendered.of_kind("ConfigMap")
        if obj["metadata"]["name"].startswith("hookline-settings-")
    )
    for owner in rendered.hookline_pod_owners():
        for c in owner["spec"]["template"]["spec"]["containers"]:
            assert {"configMapRef": {"name": settings_map}} in c["envFrom"]
            env = {var["name"]: var for var in c["env"]}
            for name, key in (("HOOKLINE_AMQP_URL", "amqp-url"), ("HOOKLINE_DATABASE_URL", "database-url")):
                assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "hookline-credentials", "key": key}
    assert rendered.settings["HOOKLINE_LOG_FORMAT"] == "json"


def test_every_hookline_container_reads_the_secrets_key_from_a_secret_of_its_own(rendered: Rendered) -> None:
    # Its own Secret: replacing hookline-credentials to rotate a password cannot drop the key.
    # The recorder reads no signing secret, so it is not given the key.
    for owner in rendered.hookline_pod_owners():
        if owner["metadata"]["name"] == "hookline-recorder":
            continue
        for c in owner["spec"]["template"]["spec"]["containers"]:
            env = {var["name"]: var for var in c["env"]}
            assert env["HOOKLINE_SECRETS_KEY"]["valueFrom"]["secretKeyRef"] == {
                "name": "hookline-secrets-key",
                "key": "secrets-key",
            }, owner["metadata"]["name"]


@pytest.mark.parametrize("secret", ["hookline-credentials", "hookline-secrets-key"])
def test_no_overlay_carries_a_secret_that_is_created_in_the_cluster(rendered: Rendered, secret: str) -> None:
    # Broker and database passwords and the secrets key are created in the cluster
    # (docs/deployment.md), never kept in git.
    assert not [obj for obj in rendered.of_kind("Secret") if obj["metadata"]["name"] == secret]


def test_no_hookline_secret_or_url_is_written_into_the_settings(rendered: Rendered) -> None:
    assert not {"HOOKLINE_AMQP_URL", "HOOKLINE_DATABASE_URL", "HOOKLINE_SECRETS_KEY"} & set(rendered.settings)


def test_no_overlay_stores_signing_secrets_unencrypted(rendered: Rendered) -> None:
    assert rendered.settings.get("HOOKLINE_ALLOW_PLAINTEXT_SECRETS", "false") == "false"
    for owner in rendered.hookline_pod_owners():
        for c in owner["spec"]["template"]["spec"]["containers"]:
            assert "HOOKLINE_ALLOW_PLAINTEXT_SECRETS" not in {var["name"] for var in c["env"]}


@pytest.mark.parametrize("component", WORKER_COMPONENTS)
def test_each_worker_deployment_sets_processes_and_threads_explicitly(
    rendered: Rendered, component: str
) -> None:
    options = worker_options(container(rendered.worker(component), "worker")["args"])
    assert int(options["--processes"][0]) >= 1
    assert int(options["--threads"][0]) >= 1


@pytest.mark.parametrize("component", WORKER_COMPONENTS)
def test_each_worker_deployment_consumes_only_its_own_queues(rendered: Rendered, component: str) -> None:
    options = worker_options(container(rendered.worker(component), "worker")["args"])
    assert options["--queues"] == QUEUES_OF[component]


@pytest.mark.parametrize("component", WORKER_COMPONENTS)
def test_the_grace_period_outlasts_the_shutdown_timeout_and_one_http_attempt(
    rendered: Rendered, component: str
) -> None:
    deployment = rendered.worker(component)
    options = worker_options(container(deployment, "worker")["args"])
    shutdown_timeout = float(options["--shutdown-timeout"][0])
    http_timeout = float(rendered.settings["HOOKLINE_HTTP_TIMEOUT"])
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # An attempt that began just before SIGTERM can finish inside the shutdown timeout...
    assert shutdown_timeout > http_timeout
    # ...and the kubelet waits for the whole shutdown before it kills.
    assert grace > shutdown_timeout + http_timeout


@pytest.mark.parametrize("component", WORKER_COMPONENTS)
def test_probes_ask_the_metrics_port_for_health_and_readiness(rendered: Rendered, component: str) -> None:
    worker = container(rendered.worker(component), "worker")
    ports = {port["name"]: port["containerPort"] for port in worker["ports"]}
    assert ports["metrics"] == int(rendered.settings["HOOKLINE_METRICS_PORT"])
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_the_metrics_directory_is_writable_on_the_read_only_root(rendered: Rendered) -> None:
    metrics_dir = rendered.settings["HOOKLINE_METRICS_DIR"]
    for owner in rendered.hookline_pod_owners():
        pod = owner["spec"]["template"]["spec"]
        empty_dirs = {volume["name"] for volume in pod["volumes"] if "emptyDir" in volume}
        for c in pod["containers"]:
            mounts = [m for m in c["volumeMounts"] if m["name"] in empty_dirs]
            assert any(
                metrics_dir == m["mountPath"] or metrics_dir.startswith(m["mountPath"].rstrip("/") + "/")
                for m in mounts
            ), f"{owner['metadata']['name']}: {metrics_dir} is not on an emptyDir"


@pytest.mark.parametrize("component", WORKER_COMPONENTS)
def test_worker_rollouts_never_drop_below_the_running_count(rendered: Rendered, component: str) -> None:
    spec = rendered.worker(component)["spec"]
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    # The autoscaler owns the replica count; an apply must not reset it.
    assert "replicas" not in spec


def test_all_hookline_pods_run_the_same_tagged_image(rendered: Rendered) -> None:
    images = {
        c["image"]
        for owner in rendered.hookline_pod_owners()
        for c in owner["spec"]["template"]["spec"]["containers"]
    }
    assert len(images) == 1, images
    (image,) = images
    name, _, tag = image.rpartition(":")
    assert name, image
    assert tag not in ("", "latest"), image


# --- rollout -------------------------------------------------------------------------------------------


def documented_first_phase_selector() -> list[tuple[str, str]]:
    """The docs' `kubectl apply -l` selector for the phase before the setup Job, as (key, value) pairs.

    docs/deployment.md (first install) must give it, and docs/operations.md (later releases) no other.
    """
    pattern = r"kubectl apply -k \$O -l '([^']+)'"
    install = set(re.findall(pattern, (REPO / "docs" / "deployment.md").read_text()))
    selectors = install | set(re.findall(pattern, (REPO / "docs" / "operations.md").read_text()))
    assert install, "docs/deployment.md should give the first-phase selector"
    assert len(selectors) == 1, f"the docs should use one first-phase selector, found {selectors}"
    pairs = [term.split("!=") for term in selectors.pop().split(",")]
    assert all(len(pair) == 2 for pair in pairs), "only `key!=value` terms are expected"
    return [(key, value) for key, value in pairs]


def test_the_documented_first_rollout_phase_applies_the_setup_job_and_no_worker(rendered: Rendered) -> None:
    excluded = documented_first_phase_selector()
    first = [
        obj
        for obj in rendered.objects
        if all(obj["metadata"].get("labels", {}).get(key) != value for key, value in excluded)
    ]
    names = {(obj["kind"], obj["metadata"]["name"]) for obj in first}
    assert ("Job", "hookline-setup") in names
    assert ("ServiceAccount", "hookline") in names
    assert ("NetworkPolicy", "hookline") in names
    assert ("RabbitmqCluster", "hookline-rabbitmq") in names
    assert any(kind == "ConfigMap" and name.startswith("hookline-settings-") for kind, name in names)
    for component in CONSUMERS:  # the recorder too: it needs the log's tables that setup makes
        assert not [
            obj
            for obj in first
            if obj.get("spec", {}).get("scaleTargetRef", {}).get("name") == f"hookline-{component}"
        ]
        assert ("Deployment", f"hookline-{component}") not in names


# --- setup Job -----------------------------------------------------------------------------------------


def test_a_job_runs_hookline_setup_once_with_retries(rendered: Rendered) -> None:
    job = rendered.one("Job", "hookline-setup")
    pod = job["spec"]["template"]["spec"]
    assert container(job, "setup")["args"] == ["setup"]
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["activeDeadlineSeconds"] > 0


# --- disruption budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize("component", CONSUMERS)
def test_each_worker_deployment_has_a_disruption_budget(rendered: Rendered, component: str) -> None:
    labels = pod_labels(rendered.worker(component))
    budgets = [
        pdb
        for pdb in rendered.of_kind("PodDisruptionBudget")
        if label_selector_matches(pdb["spec"]["selector"], labels)
    ]
    assert len(budgets) == 1
    assert budgets[0]["spec"]["maxUnavailable"] == 1
    assert budgets[0]["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"


# --- autoscaling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", CONSUMERS)
def test_each_worker_deployment_scales_on_the_queues_it_consumes_under_the_overlays_prefix(
    rendered: Rendered, component: str
) -> None:
    prefix = rendered.settings["HOOKLINE_QUEUE_PREFIX"]
    assert scaled_queues(rendered, component) == [f"{prefix}.{queue}" for queue in QUEUES_OF[component]]


@pytest.mark.parametrize("component", CONSUMERS)
def test_each_worker_deployment_has_exactly_one_autoscaler(rendered: Rendered, component: str) -> None:
    scalers = [
        obj
        for obj in rendered.of_kind("ScaledObject") + rendered.of_kind("HorizontalPodAutoscaler")
        if obj["spec"]["scaleTargetRef"]["name"] == f"hookline-{component}"
    ]
    assert len(scalers) == 1
    names = {d["metadata"]["name"] for d in rendered.of_kind("Deployment")}
    assert scalers[0]["spec"]["scaleTargetRef"]["name"] in names


def test_keda_reads_queue_lengths_with_the_credentials_secret(rendered: Rendered) -> None:
    auths = {obj["metadata"]["name"]: obj for obj in rendered.of_kind("TriggerAuthentication")}
    for scaled in rendered.of_kind("ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            assert trigger["type"] == "rabbitmq"
            # The management API counts unacknowledged (prefetched) messages too.
            assert trigger["metadata"]["protocol"] == "http"
            assert trigger["metadata"]["mode"] == "QueueLength"
            auth = auths[trigger["authenticationRef"]["name"]]
            assert auth["spec"]["secretTargetRef"] == [
                {"parameter": "host", "name": "hookline-credentials", "key": "rabbitmq-management-url"}
            ]


# --- network policy ------------------------------------------------------------------------------------


def test_the_network_policy_covers_every_hookline_pod_both_ways(rendered: Rendered) -> None:
    policy = rendered.one("NetworkPolicy", "hookline")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    for owner in rendered.hookline_pod_owners():
        assert label_selector_matches(policy["spec"]["podSelector"], pod_labels(owner)), owner["metadata"][
            "name"
        ]


def test_egress_to_the_internet_leaves_out_private_link_local_and_shared_ranges(rendered: Rendered) -> None:
    egress = rendered.one("NetworkPolicy", "hookline")["spec"]["egress"]
    assert all(rule.get("to") for rule in egress), "a rule without `to` allows every destination"
    blocks = [peer["ipBlock"] for rule in egress for peer in rule["to"] if "ipBlock" in peer]
    internet = [block for block in blocks if block["cidr"] == "0.0.0.0/0"]
    assert len(internet) == 1
    excluded = [ipaddress.ip_network(cidr) for cidr in internet[0]["except"]]
    for cidr in PRIVATE_RANGES + UNDELIVERABLE_V4:
        network = ipaddress.ip_network(cidr)
        assert any(network.subnet_of(ex) for ex in excluded), f"{cidr} is reachable"
    v6 = [block for block in blocks if block["cidr"] == "::/0"]
    assert v6, "IPv6 internet rule missing"
    excluded_v6 = [ipaddress.ip_network(cidr) for cidr in v6[0]["except"]]
    for cidr in UNDELIVERABLE_V6:
        network = ipaddress.ip_network(cidr)
        assert any(network.subnet_of(ex) for ex in excluded_v6), f"{cidr} is reachable"


def test_egress_reaches_dns_the_broker_and_the_database(rendered: Rendered) -> None:
    egress = rendered.one("NetworkPolicy", "hookline")["spec"]["egress"]
    ports = {port["port"] for rule in egress if "ports" in rule for port in rule["ports"]}
    assert {53, 5672, 5432} <= ports
    broker = rendered.one("RabbitmqCluster", "hookline-rabbitmq")["metadata"]["name"]
    broker_rules = [rule for rule in egress if any(port["port"] == 5672 for port in rule.get("ports", []))]
    assert broker_rules[0]["to"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": broker}}}]


def test_a_private_database_range_is_the_only_private_destination(rendered: Rendered) -> None:
    egress = rendered.one("NetworkPolicy", "hookline")["spec"]["egress"]
    for rule in egress:
        for peer in rule["to"]:
            cidr = peer.get("ipBlock", {}).get("cidr")
            if cidr in (None, "0.0.0.0/0", "::/0"):
                continue
            assert [port["port"] for port in rule["ports"]] == [5432], f"{cidr} is open beyond PostgreSQL"


def test_only_prometheus_may_call_the_metrics_port(rendered: Rendered) -> None:
    ingress = rendered.one("NetworkPolicy", "hookline")["spec"]["ingress"]
    assert ingress == [
        {
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "ports": [
                {"protocol": "TCP", "port": int(rendered.settings["HOOKLINE_METRICS_PORT"])},
                {"protocol": "TCP", "port": RECORDER_METRICS_PORT},
            ],
        }
    ]


# --- monitoring ----------------------------------------------------------------------------------------


def test_the_pod_monitor_scrapes_the_metrics_port_of_every_worker(rendered: Rendered) -> None:
    monitor = rendered.one("PodMonitor", "hookline")
    for component in WORKER_COMPONENTS:
        assert label_selector_matches(monitor["spec"]["selector"], pod_labels(rendered.worker(component)))
    assert not label_selector_matches(
        monitor["spec"]["selector"], pod_labels(rendered.one("Job", "hookline-setup"))
    )
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [
        ("metrics", "/metrics")
    ]


def test_the_recorders_are_scraped_as_a_job_of_their_own_that_no_worker_alert_counts(
    rendered: Rendered,
) -> None:
    monitor = rendered.one("PodMonitor", "hookline-recorder")
    recorder = pod_labels(rendered.one("Deployment", "hookline-recorder"))
    assert label_selector_matches(monitor["spec"]["selector"], recorder)
    assert not label_selector_matches(rendered.one("PodMonitor", "hookline")["spec"]["selector"], recorder)
    for component in WORKER_COMPONENTS:
        assert not label_selector_matches(monitor["spec"]["selector"], pod_labels(rendered.worker(component)))
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [
        ("metrics", "/metrics")
    ]


# --- recorder ------------------------------------------------------------------------------------------


def recorder_options(rendered: Rendered) -> dict[str, str]:
    command, *arguments = container(rendered.one("Deployment", "hookline-recorder"), "recorder")["args"]
    assert command == "recorder"
    return dict(zip(arguments[::2], arguments[1::2], strict=True))


def test_the_recorder_serves_its_probes_on_its_own_metrics_port(rendered: Rendered) -> None:
    recorder = container(rendered.one("Deployment", "hookline-recorder"), "recorder")
    ports = {port["name"]: port["containerPort"] for port in recorder["ports"]}
    assert ports["metrics"] == int(recorder_options(rendered)["--metrics-port"]) == RECORDER_METRICS_PORT
    assert recorder["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert recorder["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}


def test_the_recorder_gets_the_time_to_write_its_batch_when_stopped_and_rolls_out_without_a_gap(
    rendered: Rendered,
) -> None:
    deployment = rendered.one("Deployment", "hookline-recorder")
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > float(recorder_options(rendered)["--shutdown-timeout"])
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in deployment["spec"]


def test_the_log_may_have_a_database_of_its_own_which_setup_migrates_and_the_recorder_writes(
    rendered: Rendered,
) -> None:
    for owner, name in (
        (rendered.one("Job", "hookline-setup"), "setup"),
        (rendered.one("Deployment", "hookline-recorder"), "recorder"),
    ):
        env = {var["name"]: var for var in container(owner, name)["env"]}
        assert env["HOOKLINE_LOG_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "hookline-credentials",
            "key": "log-database-url",
            "optional": True,
        }


# --- broker --------------------------------------------------------------------------------------------


def test_the_broker_keeps_messages_on_a_persistent_volume(rendered: Rendered) -> None:
    cluster = rendered.one("RabbitmqCluster", "hookline-rabbitmq")
    assert cluster["spec"]["persistence"]["storage"]
