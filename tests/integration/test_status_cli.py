"""``hookline status`` as an operator runs it, on the real broker and database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest
from pytest_httpserver import HTTPServer
from support.logrecords import NOW, T0, event
from support.processes import run_hookline, run_json
from support.publishing import publish

from workers.deliverylog.store import LogStore
from workers.subscriptions import db

pytestmark = pytest.mark.integration

PAGE = """# TYPE hookline_deliveries_total counter
hookline_deliveries_total{{outcome="delivered"}} {delivered}
hookline_deliveries_total{{outcome="dead_lettered"}} {dead}
hookline_deliveries_total{{outcome="skipped"}} 4
# TYPE hookline_delivery_attempts_total counter
hookline_delivery_attempts_total{{result="2xx"}} {delivered}
hookline_delivery_attempts_total{{result="timeout"}} {timeouts}
# TYPE hookline_circuit_breakers_open gauge
hookline_circuit_breakers_open {breakers}
# TYPE hookline_deliveries_in_flight gauge
hookline_deliveries_in_flight 3
# TYPE hookline_worker_processes gauge
hookline_worker_processes{{state="consuming"}} 2
"""


@pytest.fixture
def ready(hookline_env: dict[str, str]) -> dict[str, str]:
    run_hookline(hookline_env, "setup")
    return hookline_env


@pytest.fixture
def pods() -> Iterator[list[HTTPServer]]:
    """Two fake worker pods whose counters move between the two reads of `status`."""
    servers = []
    for first, second in (((100, 0, 1, 0), (190, 10, 1, 1)), ((50, 5, 0, 2), (60, 5, 0, 1))):
        server = HTTPServer(host="127.0.0.1", port=0)
        server.start()
        for delivered, dead, timeouts, breakers in (first, second):
            page = PAGE.format(delivered=delivered, dead=dead, timeouts=timeouts, breakers=breakers)
            server.expect_ordered_request("/metrics").respond_with_data(page, content_type="text/plain")
        servers.append(server)
    yield servers
    for server in servers:
        server.clear()
        server.stop()


def test_status_shows_queue_depths_dead_letters_and_subscriptions(ready: dict[str, str]) -> None:
    kept = run_json(ready, "subscriptions", "add", "--url", "http://127.0.0.1:9/a", "--event", "#")
    stopped = run_json(ready, "subscriptions", "add", "--url", "http://127.0.0.1:9/b", "--event", "#")
    run_json(ready, "subscriptions", "disable", stopped["id"])
    publish(ready, count=3)
    connection = pika.BlockingConnection(pika.URLParameters(ready["HOOKLINE_AMQP_URL"]))
    connection.channel().basic_publish("", f"{ready['HOOKLINE_QUEUE_PREFIX']}.deliveries.dead", b"{}")
    connection.close()

    report = run_json(ready, "status")

    assert report["broker"]["error"] is None
    assert report["broker"]["queues"]["events"] == {"messages": 3, "consumers": 0}
    assert report["broker"]["queues"]["delayed"] == {"messages": 0, "consumers": None}
    assert report["broker"]["dead_letters"] == 1
    subscriptions = report["subscriptions"]
    assert (subscriptions["enabled"], subscriptions["disabled"], subscriptions["disabled_manual"]) == (
        1,
        1,
        1,
    )
    assert report["workers"] is None
    text = run_hookline(ready, "status").stdout
    assert "1 enabled (0 failing), 1 disabled" in text
    assert kept["id"] not in text


def test_status_reads_the_recent_success_ratio_from_worker_pods(
    ready: dict[str, str], pods: list[HTTPServer]
) -> None:
    urls = [server.url_for("/metrics") for server in pods]
    args = [arg for url in urls for arg in ("--metrics-url", url)]

    workers = run_json(ready, "status", *args, "--window", "0.2")["workers"]

    # Between the reads: 100 delivered and 10 dead-lettered; `skipped` is not a failure.
    assert workers["deliveries"] == {"delivered": 100, "dead_lettered": 10, "skipped": 0}
    assert workers["success_ratio"] == pytest.approx(100 / 110)
    assert workers["attempts"] == {"2xx": 100, "timeout": 0}
    assert (workers["circuit_breakers_open"], workers["in_flight"]) == (2, 6)
    assert workers["processes"] == {"consuming": 4}


def test_status_says_what_it_could_not_read_and_exits_1(ready: dict[str, str]) -> None:
    env = {**ready, "HOOKLINE_AMQP_URL": "amqp://guest:hunter2@127.0.0.1:1/%2F"}
    result = run_hookline(
        env, "status", "--metrics-url", "http://127.0.0.1:1/metrics", "--window", "0", check=False
    )
    assert result.returncode == 1
    assert "broker: amqp://guest:***@127.0.0.1:1/%2F  ERROR cannot read queues" in result.stdout
    assert "workers: ERROR cannot read http://127.0.0.1:1/metrics" in result.stdout
    assert "subscriptions: 0 enabled" in result.stdout
    assert "hunter2" not in result.stdout + result.stderr


RECORDER_PAGE = """# TYPE hookline_recorder_lag_seconds gauge
hookline_recorder_lag_seconds 2.5
# TYPE hookline_recorder_records_written_total counter
hookline_recorder_records_written_total{kind="event"} 10
hookline_recorder_records_written_total{kind="attempt"} 12
# TYPE hookline_recorder_write_errors_total counter
hookline_recorder_write_errors_total 1
"""


def test_status_shows_the_delivery_logs_backlog_and_the_recorders_lag(
    ready: dict[str, str], httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/metrics").respond_with_data(RECORDER_PAGE, content_type="text/plain")
    connection = pika.BlockingConnection(pika.URLParameters(ready["HOOKLINE_AMQP_URL"]))
    for _ in range(2):
        connection.channel().basic_publish("", f"{ready['HOOKLINE_QUEUE_PREFIX']}.log", b"{}")
    connection.close()
    url = httpserver.url_for("/metrics")

    log = run_json(ready, "status", "--recorder-url", url)["log"]

    assert (log["messages"], log["recorders"], log["invalid"]) == (2, 0, 0)
    recorder = log["recorder"]
    assert (recorder["lag_seconds"], recorder["write_errors"]) == (2.5, 1)
    assert recorder["records_written"] == {"event": 10, "attempt": 12}
    text = run_hookline(ready, "status", "--recorder-url", url).stdout
    assert f"delivery log: 2 messages waiting in {ready['HOOKLINE_QUEUE_PREFIX']}.log, 0 recorders" in text
    assert "recorder (1 metrics pages): lag 2.5 s, records written attempt 12, event 10" in text


def test_status_shows_when_the_recorders_last_wrote_and_how_far_behind_they_were_then(
    ready: dict[str, str],
) -> None:
    engine = db.create_engine(ready["HOOKLINE_DATABASE_URL"])
    try:
        LogStore(engine, clock=lambda: NOW).write([event("evt_1", at=T0 - 42)])
    finally:
        engine.dispose()

    log = run_json(ready, "status")["log"]
    text = run_hookline(ready, "status").stdout

    assert (log["last_write_at"], log["lag_seconds"], log["error"]) == (NOW.isoformat(), 42.0, None)
    assert f"recorders: last wrote at {NOW.isoformat()}, 42.0 s behind then" in text


def test_status_with_the_log_off_reads_nothing_of_the_log_and_finds_nothing_wrong(
    ready: dict[str, str], tmp_path: Path
) -> None:
    never_migrated = f"sqlite:///{tmp_path / 'no-log.db'}"
    env = {**ready, "HOOKLINE_LOG_ENABLED": "false", "HOOKLINE_LOG_DATABASE_URL": never_migrated}

    result = run_hookline(env, "status", "--json")

    assert result.returncode == 0, result.stdout + result.stderr
    log = json.loads(result.stdout)["log"]
    assert (log["enabled"], log["last_write_at"], log["error"]) == (False, None, None)
