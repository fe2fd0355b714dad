"""deploy/compose.yaml is a valid Compose file that runs the whole stack as docs/deployment.md says.

Validated offline against the Compose Specification's JSON schema, kept in
tests/deploy/schemas (from check-jsonschema's vendored copy, Apache 2.0).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import jsonschema
import pytest
from deploy_support import DASHBOARD, DEPLOY, SCHEMAS, load_yaml, worker_options

COMPOSE = DEPLOY / "compose.yaml"
HOOKLINE_SERVICES = ("setup", "fan-out", "delivery", "recorder", "receiver")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)  # PyYAML resolves the `<<` merge keys as Compose does


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def test_the_compose_file_is_valid_against_the_compose_specification(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    errors = [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for error in jsonschema.Draft202012Validator(schema).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_the_compose_schema_refuses_a_misspelt_service_key() -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    assert list(jsonschema.Draft202012Validator(schema).iter_errors({"services": {"x": {"imag": "y"}}}))


def test_the_stack_has_every_part(services: dict[str, Any]) -> None:
    assert set(services) == {
        "rabbitmq",
        "postgres",
        "setup",
        "fan-out",
        "delivery",
        "recorder",
        "api",
        "receiver",
        "prometheus",
        "grafana",
    }
    assert services["rabbitmq"]["image"].endswith("-management")


@pytest.mark.parametrize("name", HOOKLINE_SERVICES)
def test_hookline_services_run_the_image_built_from_the_dockerfile_without_privileges(
    services: dict[str, Any], name: str
) -> None:
    service = services[name]
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert service["read_only"] is True
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert "/tmp" in service["tmpfs"]  # noqa: S108 - the container's own tmpfs, as in Kubernetes


def test_setup_runs_once_when_broker_and_database_are_healthy(services: dict[str, Any]) -> None:
    setup = services["setup"]
    assert setup["command"] == ["setup"]
    assert setup["restart"] == "no"
    assert setup["depends_on"] == {
        "rabbitmq": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    for name in ("rabbitmq", "postgres"):
        assert services[name]["healthcheck"]["test"]


@pytest.mark.parametrize(("name", "queues"), [("fan-out", ["events"]), ("delivery", ["retries"])])
def test_workers_start_after_setup_and_consume_their_own_queues(
    services: dict[str, Any], name: str, queues: list[str]
) -> None:
    worker = services[name]
    assert worker["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    options = worker_options(worker["command"])
    assert options["--queues"] == queues
    assert {"--processes", "--threads"} <= set(options)
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])


@pytest.mark.parametrize("name", ["fan-out", "delivery"])
def test_compose_waits_for_the_workers_graceful_shutdown(services: dict[str, Any], name: str) -> None:
    worker = services[name]
    shutdown_timeout = float(worker_options(worker["command"])["--shutdown-timeout"][0])
    http_timeout = 15  # HOOKLINE_HTTP_TIMEOUT's default; compose.yaml does not change it
    assert "HOOKLINE_HTTP_TIMEOUT" not in worker["environment"]
    assert int(worker["stop_grace_period"].removesuffix("s")) > shutdown_timeout + http_timeout


def test_deliveries_may_reach_the_demo_receiver_and_no_other_private_address(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    receiver_ip = ipaddress.ip_address(services["receiver"]["networks"]["hookline"]["ipv4_address"])
    subnet = ipaddress.ip_network(compose["networks"]["hookline"]["ipam"]["config"][0]["subnet"])
    assert receiver_ip in subnet
    allowed = services["delivery"]["environment"]["HOOKLINE_ALLOWED_NETWORKS"]
    assert [ipaddress.ip_network(cidr) for cidr in allowed.split(",")] == [
        ipaddress.ip_network(f"{receiver_ip}/32")
    ]
    assert "HOOKLINE_ALLOW_PRIVATE_NETWORKS" not in services["delivery"]["environment"]


def test_the_laptop_stack_encrypts_secrets_with_an_exported_key_and_stores_them_plain_without_one(
    services: dict[str, Any],
) -> None:
    for name in ("setup", "fan-out", "delivery"):
        environment = services[name]["environment"]
        assert environment["HOOKLINE_SECRETS_KEY"] == "${HOOKLINE_SECRETS_KEY:-}"  # blank means unset
        assert environment["HOOKLINE_ALLOW_PLAINTEXT_SECRETS"] == "true"


def test_the_demo_receiver_checks_signatures_with_a_valid_secret(services: dict[str, Any]) -> None:
    command = services["receiver"]["command"]
    secret = command[command.index("--secret") + 1]
    from standardwebhooks import Webhook  # noqa: PLC0415 - a dev dependency, only this test needs it

    Webhook(secret)  # raises on a malformed whsec_ secret


def host_path(service: dict[str, Any], container_path: str) -> str:
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if target == container_path:
            return source
    raise AssertionError(f"nothing is mounted at {container_path}")


def test_prometheus_scrapes_both_workers_and_loads_the_alert_rules(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    config = load_yaml(DEPLOY / host_path(prometheus, "/etc/prometheus/prometheus.yml"))
    workers, recorders = config["scrape_configs"]
    (discovery,) = workers["dns_sd_configs"]
    assert (workers["job_name"], set(discovery["names"])) == ("hookline", {"fan-out", "delivery"})
    assert discovery["port"] == 9191
    (discovery,) = recorders["dns_sd_configs"]
    assert (recorders["job_name"], discovery["names"]) == ("hookline-recorder", ["recorder"])
    assert discovery["port"] == 9192
    assert host_path(prometheus, "/etc/prometheus/rules/hookline-alerts.yaml") == "./prometheus/alerts.yaml"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yaml"]


def test_grafana_is_provisioned_with_prometheus_and_the_hookline_dashboard(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    provisioning = DEPLOY / host_path(grafana, "/etc/grafana/provisioning")
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = load_yaml(provisioning / "dashboards" / "hookline.yaml")["providers"]
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert host_path(grafana, "/var/lib/grafana/dashboards/hookline.json") == "./grafana/hookline.json"
    # The dashboard's data source variable starts on the provisioned Prometheus.
    variables = {var["name"]: var for var in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert variables["datasource"]["current"]["value"] == datasource["uid"]


def test_every_file_the_stack_mounts_is_in_the_repository(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which does not exist"


def test_the_recorder_writes_the_log_once_setup_is_done_and_is_checked_on_its_own_port(
    services: dict[str, Any],
) -> None:
    recorder = services["recorder"]
    assert recorder["depends_on"] == {"setup": {"condition": "service_completed_successfully"}}
    command, *arguments = recorder["command"]
    options = dict(zip(arguments[::2], arguments[1::2], strict=True))
    assert (command, options["--metrics-port"]) == ("recorder", "9192")
    assert "9192/healthz" in " ".join(recorder["healthcheck"]["test"])
    shutdown_timeout = float(options["--shutdown-timeout"])
    assert int(recorder["stop_grace_period"].removesuffix("s")) > shutdown_timeout
