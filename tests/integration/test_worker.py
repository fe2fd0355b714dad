"""``hookline worker`` and ``hookline setup`` as an operator runs them, on the real broker."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pika
import pytest
from support.processes import Worker, queue_exists, run_hookline, run_json, wait_until
from support.publishing import publish
from support.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def ready(hookline_env: dict[str, str]) -> dict[str, str]:
    """An environment after `hookline setup`."""
    run_hookline(hookline_env, "setup")
    return hookline_env


def start_worker(env: dict[str, str], workers: list[Worker], log: Path, *args: str) -> Worker:
    worker = Worker(env, log, *args)
    workers.append(worker)
    return worker.start([f"{env['HOOKLINE_QUEUE_PREFIX']}.events"])


def ids_received(recorder: Receiver, path: str) -> set[str]:
    return {request.headers["webhook-id"] for request in recorder.on(path)}


def test_sigterm_lets_in_flight_deliveries_finish_and_loses_nothing(
    ready: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    def slowly(_: object) -> int:
        time.sleep(0.5)
        return 200

    hook_receiver.respond = slowly
    run_json(ready, "subscriptions", "add", "--url", f"{hook_receiver.url}/slow", "--event", "#")
    published = set(publish(ready, count=30))
    first = start_worker(ready, workers, tmp_path / "first.log")
    wait_until(lambda: len(hook_receiver.on("/slow")) >= 4, timeout=30, what="first deliveries")

    assert first.terminate() == 0
    stopped_with = ids_received(hook_receiver, "/slow")
    assert len(stopped_with) < len(published), "the test needs deliveries left when the worker stops"

    start_worker(ready, workers, tmp_path / "second.log")
    wait_until(
        lambda: ids_received(hook_receiver, "/slow") >= published,
        timeout=60,
        what="every event delivered after the restart",
    )
    assert ids_received(hook_receiver, "/slow") == published


def test_subscription_changes_reach_a_running_worker_within_seconds(
    ready: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    start_worker(ready, workers, tmp_path / "worker.log")
    added = run_json(
        ready, "subscriptions", "add", "--url", f"{hook_receiver.url}/late", "--event", "order.*"
    )
    time.sleep(2)  # HOOKLINE_SUBSCRIPTION_REFRESH_SECONDS is 0.5 in tests
    first = set(publish(ready))
    wait_until(lambda: ids_received(hook_receiver, "/late") == first, timeout=30, what="the new subscription")

    run_json(ready, "subscriptions", "disable", added["id"])
    time.sleep(2)
    publish(ready)
    run_json(ready, "subscriptions", "enable", added["id"])
    time.sleep(2)
    third = set(publish(ready))
    wait_until(
        lambda: ids_received(hook_receiver, "/late") == first | third,
        timeout=30,
        what="delivery after re-enabling",
    )
    assert ids_received(hook_receiver, "/late") == first | third


def test_a_subscription_added_is_matched_at_once_without_waiting_for_the_periodic_reload(
    ready: dict[str, str], hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    # Five minutes between reloads: only the announcement on the broker can tell the worker in time.
    env = {**ready, "HOOKLINE_SUBSCRIPTION_REFRESH_SECONDS": "300"}
    start_worker(env, workers, tmp_path / "worker.log")
    wait_until(lambda: listeners(env) == 1, timeout=15, what="the worker listening for changes")
    run_json(env, "subscriptions", "add", "--url", f"{hook_receiver.url}/at-once", "--event", "order.*")
    time.sleep(0.2)  # the announcement's round trip and one SELECT take milliseconds
    first = set(publish(env))
    wait_until(
        lambda: ids_received(hook_receiver, "/at-once") == first, timeout=30, what="the new subscription"
    )


def listeners(env: dict[str, str]) -> int:
    """Queues bound to the subscription-changes exchange: one per listening worker process."""
    exchange = f"{env['HOOKLINE_QUEUE_PREFIX']}.subscriptions.changed"
    # The broker's own CLI: AMQP cannot list bindings.
    result = subprocess.run(
        ["rabbitmqctl", "list_bindings", "source_name", "-s"], capture_output=True, text=True, check=True
    )
    return sum(1 for line in result.stdout.splitlines() if line.strip() == exchange)


def test_setup_is_idempotent(ready: dict[str, str]) -> None:
    again = run_json(ready, "setup")
    assert again["migrations_applied"] == []
    assert again["exchange"] == ready["HOOKLINE_EXCHANGE"]


def test_before_setup_the_exchange_is_missing_and_a_publish_fails_loudly(
    hookline_env: dict[str, str], amqp_connection: pika.BlockingConnection
) -> None:
    channel = amqp_connection.channel()
    channel.confirm_delivery()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as caught:
        channel.basic_publish(hookline_env["HOOKLINE_EXCHANGE"], "order.created", b"{}", mandatory=True)
    assert caught.value.reply_code == 404


def test_worker_on_an_unmigrated_database_says_to_run_setup(hookline_env: dict[str, str]) -> None:
    result = run_hookline(hookline_env, "worker", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "hookline setup" in result.stderr


def test_worker_with_a_wrong_setting_fails_with_one_line_naming_it(hookline_env: dict[str, str]) -> None:
    result = run_hookline({**hookline_env, "HOOKLINE_HTTP_TIMEOUT": "soon"}, "worker", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "HOOKLINE_HTTP_TIMEOUT" in result.stderr


def test_worker_without_a_broker_fails_with_one_line_and_no_password(ready: dict[str, str]) -> None:
    env = {**ready, "HOOKLINE_AMQP_URL": "amqp://guest:hunter2@127.0.0.1:1/%2F"}
    result = run_hookline(env, "worker", check=False)
    assert result.returncode == 1
    assert "cannot declare" in result.stderr
    assert "hunter2" not in result.stderr


def test_setup_declares_the_log_queue_the_workers_record_into_and_where_the_recorder_parks(
    ready: dict[str, str],
) -> None:
    prefix = ready["HOOKLINE_QUEUE_PREFIX"]
    queues = run_json(ready, "setup")["queues"]
    assert {f"{prefix}.log", f"{prefix}.log.invalid"} <= set(queues)
    for queue in (f"{prefix}.log", f"{prefix}.log.invalid"):
        assert queue_exists(ready["HOOKLINE_AMQP_URL"], queue)
