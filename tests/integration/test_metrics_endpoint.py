"""``hookline worker``'s /metrics, /healthz and /readyz, served by a real worker on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pika
import pytest
from support.metrics import free_port, get, value
from support.processes import Worker, run_hookline, wait_until
from support.publishing import publish

pytestmark = pytest.mark.integration


@pytest.fixture
def metrics_env(hookline_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """A set-up environment whose worker serves metrics on a free loopback port, files under tmp_path."""
    run_hookline(hookline_env, "setup")
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    return {
        **hookline_env,
        "HOOKLINE_METRICS_PORT": str(free_port()),
        "HOOKLINE_METRICS_HOST": "127.0.0.1",
        "HOOKLINE_METRICS_DIR": str(metrics_dir),
    }


def base_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['HOOKLINE_METRICS_PORT']}"


def start(env: dict[str, str], workers: list[Worker], tmp_path: Path, *args: str) -> Worker:
    worker = Worker(env, tmp_path / "worker.log", *args)
    workers.append(worker)
    queues = [f"{env['HOOKLINE_QUEUE_PREFIX']}.{queue}" for queue in args[1::2] if args[0] == "--queues"]
    worker.start(queues or [f"{env['HOOKLINE_QUEUE_PREFIX']}.events"])
    wait_until(
        lambda: get(f"{base_url(env)}/readyz")[0] == 200, timeout=30, what="/readyz", log=worker.log_path
    )
    return worker


def test_a_worker_serves_metrics_of_all_its_processes_that_promtool_accepts(
    metrics_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    start(metrics_env, workers, tmp_path, "--processes", "2")
    status, page = get(f"{base_url(metrics_env)}/metrics")
    assert status == 200
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package (.ci/run does)"
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=page, capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert value(page, "hookline_worker_processes", state="consuming") == 2
    assert value(page, "hookline_worker_processes_expected") == 2
    assert value(page, "hookline_broker_up") == 1
    assert value(page, "hookline_database_up") == 1
    # Written by the worker processes, read by the parent: the multiprocess files work.
    assert value(page, "hookline_deliveries_deferred_total") == 0
    assert value(page, "hookline_deliveries_in_flight") == 0
    assert "dramatiq_" not in page
    assert "guest" not in page


def test_queue_depths_and_dead_letters_come_from_the_broker(
    metrics_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    start(metrics_env, workers, tmp_path, "--queues", "retries")
    publish(metrics_env, count=7)  # nobody consumes events: they wait
    connection = pika.BlockingConnection(pika.URLParameters(metrics_env["HOOKLINE_AMQP_URL"]))
    dead_letters = f"{metrics_env['HOOKLINE_QUEUE_PREFIX']}.deliveries.dead"
    connection.channel().basic_publish("", dead_letters, b"{}", pika.BasicProperties(delivery_mode=2))
    connection.close()

    def page() -> str:
        return get(f"{base_url(metrics_env)}/metrics")[1]

    wait_until(
        lambda: value(page(), "hookline_queue_messages", queue="events") == 7, timeout=15, what="events depth"
    )
    current = page()
    assert value(current, "hookline_queue_messages", queue="dead_letters") == 1
    assert value(current, "hookline_queue_consumers", queue="events") == 0
    assert value(current, "hookline_queue_consumers", queue="retries") == 1
    assert value(current, "hookline_subscriptions", state="healthy") == 0


def test_healthz_and_readyz_answer_for_a_consuming_worker(
    metrics_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    start(metrics_env, workers, tmp_path)
    for path in ("/healthz", "/readyz"):
        status, body = get(f"{base_url(metrics_env)}{path}", accept="application/json")
        assert status == 200, body
        report = json.loads(body)
        assert report["status"] == "ok"
        assert [process["state"] for process in report["processes"]] == ["consuming"]
    assert get(f"{base_url(metrics_env)}/nothing-here")[0] == 404


def test_a_killed_worker_process_fails_healthz_until_the_pod_stops(
    metrics_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    worker = start(metrics_env, workers, tmp_path, "--processes", "2")
    _, body = get(f"{base_url(metrics_env)}/healthz")
    victim = json.loads(body)["processes"][0]["pid"]
    os.kill(victim, signal.SIGKILL)
    seen: list[tuple[int, str]] = []

    def unhealthy() -> bool:
        try:
            seen.append(get(f"{base_url(metrics_env)}/healthz"))
        except OSError:
            return True  # the whole worker stopped, as dramatiq does when a process dies
        return seen[-1][0] == 503

    wait_until(unhealthy, timeout=20, what="/healthz to fail", interval=0.05)
    assert seen, "the server answered at least once after the kill"
    failed = [json.loads(body) for status, body in seen if status == 503]
    assert failed, f"no 503 before the worker stopped: {seen}"
    assert f"worker process {victim} exited" in failed[0]["problems"]
    assert worker.process is not None
    worker.process.wait(timeout=60)
    assert worker.process.returncode != 0


def test_the_metrics_directory_is_created_fresh_and_removed_when_the_worker_stops(
    metrics_env: dict[str, str], workers: list[Worker], tmp_path: Path
) -> None:
    worker = start(metrics_env, workers, tmp_path)
    metrics_dir = Path(metrics_env["HOOKLINE_METRICS_DIR"])
    (run_dir,) = metrics_dir.iterdir()
    assert run_dir.name.startswith("hookline-metrics-")
    assert list(run_dir.glob("*.db")), "the worker processes write their metrics there"
    assert worker.terminate() == 0
    assert list(metrics_dir.iterdir()) == []


def test_a_taken_metrics_port_stops_the_worker_with_one_line(metrics_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(metrics_env["HOOKLINE_METRICS_PORT"])))
        taken.listen()
        started = time.monotonic()
        result = run_hookline(metrics_env, "worker", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert f"cannot serve metrics on 127.0.0.1:{metrics_env['HOOKLINE_METRICS_PORT']}" in result.stderr
    assert time.monotonic() - started < 60
    assert list(Path(metrics_env["HOOKLINE_METRICS_DIR"]).iterdir()) == []
