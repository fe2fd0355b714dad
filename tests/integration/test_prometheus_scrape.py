"""A real Prometheus scrapes a running worker: the series it stores are there, with the right values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.metrics import free_port, get
from support.processes import Worker, run_hookline, run_json, wait_until
from support.prometheus import api, prometheus, scalar
from support.publishing import publish
from support.receiver import Receiver

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EVENTS = 5


@pytest.fixture
def scraped_worker(
    hookline_env: dict[str, str], workers: list[Worker], hook_receiver: Receiver, tmp_path: Path
) -> dict[str, str]:
    """A worker with a subscription to the test receiver, serving metrics on loopback."""
    run_hookline(hookline_env, "setup")
    run_json(
        hookline_env, "subscriptions", "add", "--url", f"{hook_receiver.url}/scraped", "--event", "order.*"
    )
    env = {
        **hookline_env,
        "HOOKLINE_METRICS_PORT": str(free_port()),
        "HOOKLINE_METRICS_HOST": "127.0.0.1",
        "HOOKLINE_METRICS_DIR": str(tmp_path),  # the worker is SIGKILLed at the end: no clean-up of its own
    }
    worker = Worker(env, tmp_path / "worker.log", "--processes", "2")
    workers.append(worker)
    worker.start([f"{env['HOOKLINE_QUEUE_PREFIX']}.events", f"{env['HOOKLINE_QUEUE_PREFIX']}.retries"])
    ready = f"http://127.0.0.1:{env['HOOKLINE_METRICS_PORT']}/readyz"
    wait_until(lambda: get(ready)[0] == 200, timeout=30, what="worker ready", log=worker.log_path)
    return env


def eventually(url: str, promql: str, expected: float, what: str) -> None:
    seen: list[float | None] = []

    def matches() -> bool:
        seen.append(scalar(url, promql))
        return seen[-1] == expected

    try:
        wait_until(matches, timeout=30, what=what, interval=0.5)
    except AssertionError:
        raise AssertionError(f"{what}: {promql} was {seen[-1]}, expected {expected}") from None


def test_prometheus_scrapes_the_worker_and_stores_its_series(
    scraped_worker: dict[str, str], hook_receiver: Receiver, tmp_path: Path
) -> None:
    target = f"127.0.0.1:{scraped_worker['HOOKLINE_METRICS_PORT']}"
    rules = REPO / "deploy" / "prometheus" / "alerts.yaml"
    with prometheus(tmp_path / "prometheus", target, rule_files=[rules]) as url:
        # What the parent computes at scrape time
        eventually(url, 'up{job="hookline"}', 1, "the target is up")
        eventually(url, 'hookline_worker_processes{state="consuming"}', 2, "both processes consuming")
        eventually(url, "hookline_broker_up", 1, "the broker answers")
        eventually(url, 'hookline_subscriptions{state="healthy"}', 1, "one healthy subscription")
        eventually(url, 'hookline_queue_consumers{queue="retries"}', 2, "consumers of retries")

        published = set(publish(scraped_worker, "order.created", count=EVENTS))
        wait_until(
            lambda: {r.headers["webhook-id"] for r in hook_receiver.on("/scraped")} >= published,
            timeout=30,
            what="every event delivered",
        )

        # What the worker processes record, summed by the parent
        eventually(
            url,
            'sum(hookline_events_received_total{outcome="fanned_out", event_type="order.created"})',
            EVENTS,
            "events fanned out",
        )
        eventually(url, 'sum(hookline_deliveries_total{outcome="delivered"})', EVENTS, "deliveries delivered")
        eventually(url, 'sum(hookline_delivery_attempts_total{result="2xx"})', EVENTS, "2xx attempts")
        eventually(url, "sum(hookline_delivery_latency_seconds_count)", EVENTS, "latencies observed")
        eventually(url, "sum(hookline_delivery_attempt_duration_seconds_count)", EVENTS, "attempts timed")
        eventually(
            url, 'sum(hookline_attempts_per_delivery_bucket{le="1.0"})', EVENTS, "first-attempt deliveries"
        )
        eventually(url, "sum(hookline_deliveries_in_flight)", 0, "nothing left in flight")
        eventually(url, 'hookline_queue_messages{queue="events"}', 0, "the events queue drained")

        groups = api(url, "rules", type="alert")["groups"]
        loaded = [rule for group in groups for rule in group["rules"]]
        written = yaml.safe_load(rules.read_text())["groups"]
        assert sorted(rule["name"] for rule in loaded) == sorted(
            rule["alert"] for group in written for rule in group["rules"]
        )
        assert {rule["health"] for rule in loaded} == {"ok"}
        assert {rule["state"] for rule in loaded} == {"inactive"}
