"""The API's Kubernetes objects: probes, a Service, a disruption budget, ingress only as documented."""

from __future__ import annotations

from deploy_support import Rendered, container


def test_the_api_runs_hookline_api_with_probes_on_its_http_port(rendered: Rendered) -> None:
    api = container(rendered.one("Deployment", "hookline-api"), "api")
    ports = {port["name"]: port["containerPort"] for port in api["ports"]}
    assert api["args"] == ["api"]
    assert ports == {"http": 8080, "api-metrics": 9192}
    assert api["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_the_api_is_reached_through_its_service_and_drained_one_pod_at_a_time(rendered: Rendered) -> None:
    deployment = rendered.one("Deployment", "hookline-api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = rendered.one("Service", "hookline-api")
    budget = rendered.one("PodDisruptionBudget", "hookline-api")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1
    assert deployment["spec"]["replicas"] >= 2  # a budget of one unavailable leaves one answering


def test_only_labelled_clients_reach_the_api_port_and_only_prometheus_its_metrics(rendered: Rendered) -> None:
    ingress = rendered.one("NetworkPolicy", "hookline-api")["spec"]["ingress"]
    by_port = {rule["ports"][0]["port"]: rule["from"] for rule in ingress}
    assert by_port == {
        8080: [
            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"hookline.dev/api-client": "true"}}}
        ],
        9192: [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    }


def test_prometheus_scrapes_the_api_s_metrics_port(rendered: Rendered) -> None:
    monitor = rendered.one("PodMonitor", "hookline-api")
    assert [(e["port"], e["path"]) for e in monitor["spec"]["podMetricsEndpoints"]] == [
        ("api-metrics", "/metrics")
    ]
