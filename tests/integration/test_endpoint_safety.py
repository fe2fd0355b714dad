"""A bad endpoint does not hurt the others; outbound requests are guarded; failing ones are disabled."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.processes import Worker, dead_letters, run_hookline, run_json, wait_until
from support.publishing import publish
from support.receiver import Receiver, silent_server

pytestmark = pytest.mark.integration


@pytest.fixture
def env(hookline_env: dict[str, str]) -> dict[str, str]:
    hookline_env.update({"HOOKLINE_RETRY_SCHEDULE": "1s,1s,1s,1s,1s,1s", "HOOKLINE_RETRY_JITTER": "0"})
    run_hookline(hookline_env, "setup")
    return hookline_env


def start(env: dict[str, str], workers: list[Worker], log: Path, *args: str) -> Worker:
    worker = Worker(env, log, *args)
    workers.append(worker)
    return worker.start([f"{env['HOOKLINE_QUEUE_PREFIX']}.events", f"{env['HOOKLINE_QUEUE_PREFIX']}.retries"])


def subscribe(env: dict[str, str], url: str, pattern: str) -> dict[str, Any]:
    result: dict[str, Any] = run_json(env, "subscriptions", "add", "--url", url, "--event", pattern)
    return result


@pytest.fixture
def hanging_url() -> Iterator[str]:
    with silent_server() as url:
        yield url


def test_healthy_endpoints_are_served_while_another_hangs(
    env: dict[str, str], hook_receiver: Receiver, hanging_url: str, workers: list[Worker], tmp_path: Path
) -> None:
    env.update({"HOOKLINE_HTTP_TIMEOUT": "20", "HOOKLINE_ENDPOINT_MAX_IN_FLIGHT": "2"})
    subscribe(env, hanging_url, "slow.#")
    subscribe(env, f"{hook_receiver.url}/fine", "fine.#")
    start(env, workers, tmp_path / "worker.log", "--threads", "4")
    publish(env, "slow.thing", count=20)
    time.sleep(1)  # the hanging endpoint now holds its two slots
    started = time.monotonic()
    healthy = set(publish(env, "fine.thing", count=50))
    wait_until(
        lambda: {r.headers["webhook-id"] for r in hook_receiver.on("/fine")} == healthy,
        timeout=15,
        what="every healthy delivery while the other endpoint hangs",
    )
    assert time.monotonic() - started < 15  # long before the hanging requests time out (20 s)


def test_with_the_guard_on_a_loopback_subscription_is_refused_and_the_receiver_sees_nothing(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env["HOOKLINE_ALLOW_PRIVATE_NETWORKS"] = "false"
    subscribe(env, f"{hook_receiver.url}/guarded", "#")
    start(env, workers, tmp_path / "worker.log")
    [event_id] = publish(env)
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the refused delivery's dead letter")
    [letter] = dead_letters(env)
    assert (letter["event_id"], letter["last_reason"], letter["cause"]) == (
        event_id,
        "blocked_address",
        "permanent",
    )
    assert letter["attempts"] == 1
    assert hook_receiver.on("/guarded") == []


def test_an_allowlisted_network_is_delivered_to_with_the_guard_on(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env.update({"HOOKLINE_ALLOW_PRIVATE_NETWORKS": "false", "HOOKLINE_ALLOWED_NETWORKS": "127.0.0.0/8"})
    subscribe(env, f"{hook_receiver.url}/allowed", "#")
    start(env, workers, tmp_path / "worker.log")
    published = set(publish(env))
    wait_until(
        lambda: {r.headers["webhook-id"] for r in hook_receiver.on("/allowed")} == published,
        timeout=30,
        what="the delivery to the allowlisted network",
    )


def test_410_gone_disables_the_subscription_at_once(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    hook_receiver.respond = lambda _: 410
    subscription = subscribe(env, f"{hook_receiver.url}/gone", "#")
    start(env, workers, tmp_path / "worker.log")
    publish(env)

    def disabled() -> bool:
        shown = run_json(env, "subscriptions", "show", subscription["id"])
        return shown["enabled"] is False and shown["disabled_reason"] == "gone"

    wait_until(disabled, timeout=30, what="the subscription disabled as gone", interval=0.5)


def test_a_subscription_failing_longer_than_the_limit_is_disabled_and_enable_resumes_it(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env.update({"HOOKLINE_AUTO_DISABLE_AFTER": "2s", "HOOKLINE_BREAKER_FAILURES": "1000"})
    hook_receiver.respond = lambda _: 503
    subscription = subscribe(env, f"{hook_receiver.url}/failing", "#")
    start(env, workers, tmp_path / "worker.log")
    publish(env)

    def shown() -> dict[str, Any]:
        result: dict[str, Any] = run_json(env, "subscriptions", "show", subscription["id"])
        return result

    wait_until(lambda: shown()["disabled_reason"] == "failing", timeout=30, what="auto-disable", interval=0.5)
    assert shown()["enabled"] is False
    hook_receiver.respond = lambda _: 200
    run_json(env, "subscriptions", "enable", subscription["id"])
    time.sleep(2)  # the workers' cache refreshes every 0.5 s in tests
    later = set(publish(env))
    wait_until(
        lambda: {r.headers["webhook-id"] for r in hook_receiver.on("/failing")} >= later,
        timeout=30,
        what="delivery after enable",
    )
    assert shown()["failing_since"] is None
