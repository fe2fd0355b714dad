"""Retries wait in RabbitMQ and fire on schedule; what hookline gives up on lands in the dead-letter queue."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook
from support.processes import Worker, dead_letters, messages, run_hookline, run_json, wait_until
from support.publishing import publish
from support.receiver import Received, Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def env(hookline_env: dict[str, str]) -> dict[str, str]:
    """Set up, with a short schedule and no jitter so spacing can be checked."""
    hookline_env.update({"HOOKLINE_RETRY_SCHEDULE": "1s,2s,3s", "HOOKLINE_RETRY_JITTER": "0"})
    # These tests count attempts; the circuit breaker would turn some into circuit_open failures.
    hookline_env["HOOKLINE_BREAKER_FAILURES"] = "1000"
    run_hookline(hookline_env, "setup")
    return hookline_env


def start(env: dict[str, str], workers: list[Worker], log: Path) -> Worker:
    worker = Worker(env, log)
    workers.append(worker)
    return worker.start([f"{env['HOOKLINE_QUEUE_PREFIX']}.events", f"{env['HOOKLINE_QUEUE_PREFIX']}.retries"])


def subscribe(env: dict[str, str], url: str) -> dict[str, Any]:
    result: dict[str, Any] = run_json(env, "subscriptions", "add", "--url", url, "--event", "#")
    return result


def failing(times: int, status: int = 503, headers: dict[str, str] | None = None) -> Any:
    """A responder that fails the first ``times`` requests of each webhook-id, then answers 200."""
    seen: dict[str, int] = {}

    def respond(request: Received) -> int | tuple[int, dict[str, str]]:
        webhook_id = request.headers["webhook-id"]
        seen[webhook_id] = seen.get(webhook_id, 0) + 1
        return (status, headers or {}) if seen[webhook_id] <= times else 200

    return respond


def test_a_delivery_that_fails_twice_arrives_on_the_third_attempt_with_the_configured_spacing(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    hook_receiver.respond = failing(2)
    subscribe(env, f"{hook_receiver.url}/flaky")
    start(env, workers, tmp_path / "worker.log")
    [event_id] = publish(env)
    wait_until(lambda: len(hook_receiver.on("/flaky")) == 3, timeout=30, what="three attempts")
    time.sleep(1.5)  # nothing more may come
    attempts = hook_receiver.on("/flaky")
    assert len(attempts) == 3
    assert {request.headers["webhook-id"] for request in attempts} == {event_id}
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(attempts)]
    for gap, scheduled in zip(gaps, (1.0, 2.0), strict=True):
        assert scheduled <= gap <= scheduled * 1.1 + 1.0, gaps
    assert messages(env["HOOKLINE_AMQP_URL"], f"{env['HOOKLINE_QUEUE_PREFIX']}.deliveries.dead") == 0


def test_an_endpoint_that_always_fails_ends_in_the_dead_letter_queue_with_its_history(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    hook_receiver.respond = lambda _: 503
    subscription = subscribe(env, f"{hook_receiver.url}/down")
    start(env, workers, tmp_path / "worker.log")
    [event_id] = publish(env)
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the dead letter")
    [letter] = dead_letters(env)
    assert len(hook_receiver.on("/down")) == 4
    assert letter["subscription_id"] == subscription["id"]
    assert (letter["event_id"], letter["event_type"]) == (event_id, "order.created")
    assert (letter["attempts"], letter["cause"]) == (4, "exhausted")
    assert (letter["last_status"], letter["last_reason"]) == (503, "http_status")
    assert letter["first_attempt_at"] < letter["last_attempt_at"]
    assert json.loads(letter["payload"])["data"] == {"n": 0}
    assert letter["headers"]["x-hookline-subscription-id"] == subscription["id"]


def test_410_gone_is_dead_lettered_after_one_attempt(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    hook_receiver.respond = lambda _: 410
    subscribe(env, f"{hook_receiver.url}/gone")
    start(env, workers, tmp_path / "worker.log")
    publish(env)
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the dead letter")
    [letter] = dead_letters(env)
    assert (letter["attempts"], letter["cause"], letter["last_status"]) == (1, "permanent", 410)
    time.sleep(1.5)
    assert len(hook_receiver.on("/gone")) == 1


def test_retry_after_on_a_429_is_honoured(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    hook_receiver.respond = failing(1, status=429, headers={"retry-after": "3"})
    subscribe(env, f"{hook_receiver.url}/busy")
    start(env, workers, tmp_path / "worker.log")
    publish(env)
    wait_until(lambda: len(hook_receiver.on("/busy")) == 2, timeout=30, what="the second attempt")
    first, second = hook_receiver.on("/busy")
    assert 3.0 <= second.at - first.at <= 3.0 * 1.1 + 1.0


def test_client_errors_are_final_when_configured_so(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env["HOOKLINE_RETRY_CLIENT_ERRORS"] = "false"
    hook_receiver.respond = lambda _: 400
    subscribe(env, f"{hook_receiver.url}/strict")
    start(env, workers, tmp_path / "worker.log")
    publish(env)
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the dead letter")
    assert dead_letters(env)[0]["cause"] == "permanent"
    assert len(hook_receiver.on("/strict")) == 1


def test_a_delivery_older_than_the_maximum_age_is_given_up(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env["HOOKLINE_RETRY_MAX_AGE"] = "2.5s"
    hook_receiver.respond = lambda _: 500
    subscribe(env, f"{hook_receiver.url}/old")
    start(env, workers, tmp_path / "worker.log")
    publish(env)
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the dead letter")
    [letter] = dead_letters(env)
    # Attempts at 0 s and 1 s; the third would come at 3 s, past the 2.5 s maximum age.
    assert (letter["attempts"], letter["cause"]) == (2, "max_age")


def test_a_worker_killed_while_retries_are_pending_loses_none_of_them(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env["HOOKLINE_RETRY_SCHEDULE"] = "3s"
    env["HOOKLINE_BREAKER_FAILURES"] = "1000"  # twenty 503s in a row: not what this test is about
    hook_receiver.respond = failing(1)
    subscribe(env, f"{hook_receiver.url}/kill")
    first = start(env, workers, tmp_path / "first.log")
    published = set(publish(env, count=20))
    wait_until(lambda: len(hook_receiver.on("/kill")) >= 20, timeout=30, what="every first attempt")
    first.kill()  # SIGKILL, the whole process group
    start(env, workers, tmp_path / "second.log")

    def delivered() -> set[str]:
        return {request.headers["webhook-id"] for request in hook_receiver.on("/kill")[20:]}

    wait_until(lambda: delivered() >= published, timeout=60, what="every retry after the kill")
    assert delivered() == published


def test_a_dead_letter_replayed_after_the_endpoint_recovers_is_delivered_with_the_same_webhook_id(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env["HOOKLINE_RETRY_SCHEDULE"] = "1s"
    hook_receiver.respond = lambda _: 503
    subscription = subscribe(env, f"{hook_receiver.url}/recovers")
    start(env, workers, tmp_path / "worker.log")
    [event_id] = publish(env)
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the dead letter")
    [letter] = dead_letters(env)

    hook_receiver.respond = lambda _: 200
    run_hookline(env, "dlq", "replay", letter["id"])
    wait_until(lambda: len(hook_receiver.on("/recovers")) == 3, timeout=30, what="the replayed delivery")
    replayed = hook_receiver.on("/recovers")[-1]
    assert replayed.headers["webhook-id"] == event_id
    Webhook(subscription["secret"]).verify(replayed.body, replayed.headers)
    assert dead_letters(env) == []


def test_deliveries_under_way_when_a_subscription_is_disabled_become_dead_letters(
    env: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    env["HOOKLINE_RETRY_SCHEDULE"] = "3s"
    hook_receiver.respond = lambda _: 503
    subscription = subscribe(env, f"{hook_receiver.url}/paused")
    start(env, workers, tmp_path / "worker.log")
    [event_id] = publish(env)
    wait_until(lambda: len(hook_receiver.on("/paused")) == 1, timeout=30, what="the first attempt")
    run_json(env, "subscriptions", "disable", subscription["id"])
    wait_until(lambda: len(dead_letters(env)) == 1, timeout=30, what="the dead letter")
    [letter] = dead_letters(env)
    assert (letter["event_id"], letter["cause"], letter["attempts"]) == (event_id, "disabled", 1)
    assert len(hook_receiver.on("/paused")) == 1
