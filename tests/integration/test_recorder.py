"""Workers record, ``hookline recorder`` writes: the delivery log end to end.

On the real RabbitMQ, and on SQLite and PostgreSQL: events, attempts and
skipped deliveries arrive; a worker and the recorder killed mid-stream leave
each event and attempt in the log exactly once; a database outage delays the
log and loses nothing; what is not a log message is parked.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pika
import psycopg
import pytest
from support.metrics import free_port, get, value
from support.processes import Worker, messages, run_hookline, run_json, wait_until
from support.publishing import publish
from support.receiver import Received, Receiver
from support.recording import LogContents, RecorderProcess, read_log

from workers.deliverylog.records import DeliveryState, EventRecord, encode

pytestmark = pytest.mark.integration

FLAKY_FAILURES = 1  # each webhook to /flaky fails this many times before it is delivered


def flaky_then_fine(failures: int = FLAKY_FAILURES) -> Callable[[Received], int]:
    """Answers 503 to the first ``failures`` requests of each webhook on /flaky, then 200; 200 elsewhere."""
    seen: dict[str, int] = {}
    lock = threading.Lock()

    def respond(request: Received) -> int:
        if request.path != "/flaky":
            return 200
        with lock:
            seen[request.headers["webhook-id"]] = count = seen.get(request.headers["webhook-id"], 0) + 1
        return 503 if count <= failures else 200

    return respond


@pytest.fixture
def env(hookline_env: dict[str, str], database_url: str) -> dict[str, str]:
    """Set up on SQLite and on PostgreSQL; retries come after a second; the breaker stays closed."""
    env = {
        **hookline_env,
        "HOOKLINE_DATABASE_URL": database_url,
        "HOOKLINE_RETRY_SCHEDULE": "1s,1s,1s,1s",
        "HOOKLINE_RETRY_JITTER": "0",
        # /fine and /flaky are one endpoint: five first tries of /flaky in a row would open its
        # breaker and hold /fine back too, for 30 s (a CI run waited 60 s for a quarter of the
        # requests). These tests are about the log, not the breaker (tests/unit/test_isolation.py).
        "HOOKLINE_BREAKER_FAILURES": "1000",
    }
    run_hookline(env, "setup")
    return env


@dataclass
class Deployment:
    """What a test runs: workers and recorders on one environment, and the log they fill."""

    env: dict[str, str]
    database_url: str
    logs: Path
    workers: list[Worker] = field(default_factory=list)
    recorders: list[RecorderProcess] = field(default_factory=list)

    def worker(self) -> Worker:
        worker = Worker(self.env, self.logs / f"worker{len(self.workers)}.log")
        self.workers.append(worker)
        return worker.start([f"{self.env['HOOKLINE_QUEUE_PREFIX']}.events"])

    def recorder(self, *args: str) -> RecorderProcess:
        log = self.logs / f"recorder{len(self.recorders)}.log"
        recorder = RecorderProcess(self.env, log, *(args or ("--metrics-port", "0")))
        self.recorders.append(recorder)
        return recorder.start()

    @property
    def recorder_log(self) -> Path:
        return self.recorders[-1].log_path

    def log(self) -> LogContents:
        return read_log(self.database_url)

    def subscribe(self, url: str, pattern: str = "order.*") -> str:
        added: dict[str, str] = run_json(self.env, "subscriptions", "add", "--url", url, "--event", pattern)
        return added["id"]

    def queued(self, queue: str = "log") -> int:
        return messages(self.env["HOOKLINE_AMQP_URL"], f"{self.env['HOOKLINE_QUEUE_PREFIX']}.{queue}")

    def stop(self) -> None:
        for worker in self.workers:
            worker.kill()
        for recorder in self.recorders:
            recorder.kill()


@pytest.fixture
def deployment(env: dict[str, str], database_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """Each worker and recorder it started is SIGKILLed at the end if it still runs."""
    started = Deployment(env, database_url, tmp_path)
    yield started
    started.stop()


@pytest.fixture
def log_queue(env: dict[str, str], amqp_connection: pika.BlockingConnection) -> Callable[[bytes], None]:
    """Publishes a message to the log queue, confirmed, as a worker would."""
    channel = amqp_connection.channel()
    channel.confirm_delivery()

    def send(body: bytes) -> None:
        channel.basic_publish("", f"{env['HOOKLINE_QUEUE_PREFIX']}.log", body, mandatory=True)

    return send


def event_record(event_id: str, matched: int = 0) -> bytes:
    """A log message holding one event, received now."""
    return encode(
        [EventRecord(event_id, "order.created", "2026-11-28T10:00:00+00:00", "{}", time.time(), matched)]
    )


def settled(log: LogContents, events: set[str], deliveries: int) -> bool:
    """Every event is in the log and each of ``deliveries`` deliveries reached a final state."""
    final = {DeliveryState.DELIVERED, DeliveryState.SKIPPED, DeliveryState.DEAD_LETTERED}
    done = [row for row in log.deliveries if row[3] in final]
    return set(log.event_ids) >= events and len(done) >= deliveries


def test_events_attempts_and_skipped_deliveries_reach_the_log_through_a_worker_and_the_recorder(
    deployment: Deployment, hook_receiver: Receiver
) -> None:
    hook_receiver.respond = flaky_then_fine()
    fine = deployment.subscribe(f"{hook_receiver.url}/fine")
    flaky = deployment.subscribe(f"{hook_receiver.url}/flaky")
    paused = deployment.subscribe(f"{hook_receiver.url}/paused")
    run_json(deployment.env, "subscriptions", "pause", paused)
    deployment.worker()
    deployment.recorder()
    orders = set(publish(deployment.env, count=5))
    [nobody] = publish(deployment.env, "user.created")

    wait_until(
        lambda: settled(deployment.log(), orders | {nobody}, deliveries=15),
        timeout=60,
        what="every event and delivery in the log",
        log=deployment.recorder_log,
    )
    log = deployment.log()
    assert dict(log.events) == {**dict.fromkeys(orders, 3), nobody: 0}
    states = {(event, sub): (state, attempts) for event, sub, _run, state, attempts in log.deliveries}
    for event in orders:
        assert states[event, fine] == ("delivered", 1)
        assert states[event, flaky] == ("delivered", 2)
        assert states[event, paused] == ("skipped", 0)
    assert sorted({(attempt, state, status) for _, attempt, state, status in log.attempts}) == [
        (1, "delivered", 200),
        (1, "retrying", 503),
        (2, "delivered", 200),
    ]
    assert len(log.attempts) == 5 * 3  # fine once, flaky twice, paused never


def test_a_worker_and_the_recorder_killed_mid_stream_leave_every_event_and_attempt_recorded_exactly_once(
    deployment: Deployment, hook_receiver: Receiver
) -> None:
    hook_receiver.respond = flaky_then_fine()
    deployment.subscribe(f"{hook_receiver.url}/fine")
    deployment.subscribe(f"{hook_receiver.url}/flaky")
    published = set(publish(deployment.env, count=300))
    first_recorder = deployment.recorder("--metrics-port", "0", "--linger-ms", "50")
    first_worker = deployment.worker()
    wait_until(lambda: len(hook_receiver.requests) >= 150, timeout=60, what="a quarter of the requests")

    first_worker.kill()  # SIGKILL, mid-stream: what it held unacked is redelivered
    first_recorder.kill()
    assert len(deployment.log().event_ids) < len(published), "the test needs work left to do"
    deployment.recorder()
    deployment.worker()

    wait_until(
        lambda: settled(deployment.log(), published, deliveries=2 * len(published)),
        timeout=120,
        what="every event and delivery settled in the log",
        log=deployment.recorder_log,
    )
    log = deployment.log()
    assert log.event_ids == dict.fromkeys(published, 1)  # each event exactly once
    assert {state for _, _, _, state, _ in log.deliveries} == {"delivered"}
    numbers = log.attempt_numbers()
    assert len(numbers) == 2 * len(published)
    for delivery, attempts in numbers.items():
        # Each attempt once, none missing: 1..n, whatever was made twice after the kill.
        assert attempts == list(range(1, len(attempts) + 1)), delivery


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_recorder_waits_out_a_database_outage_acking_nothing_and_loses_no_record(
    deployment: Deployment, hook_receiver: Receiver
) -> None:
    deployment.subscribe(f"{hook_receiver.url}/fine")
    metrics_url = f"http://127.0.0.1:{free_port()}"
    deployment.recorder("--metrics-port", metrics_url.rsplit(":", 1)[1])
    deployment.worker()
    with database_down(deployment.database_url):
        during = set(publish(deployment.env, count=50))
        # Webhooks go out while the log's database is down: recording delays the log, not them.
        wait_until(lambda: len(hook_receiver.on("/fine")) >= 50, timeout=30, what="deliveries meanwhile")
        wait_until(
            lambda: (
                (value(get(f"{metrics_url}/metrics")[1], "hookline_recorder_write_errors_total") or 0) > 0
            ),
            timeout=30,
            what="the recorder failing to write",
        )
        assert get(f"{metrics_url}/readyz")[0] == 503
        time.sleep(1)  # the recorder holds the batch, unacked: nothing is written meanwhile
    assert set(deployment.log().event_ids).isdisjoint(during)
    wait_until(
        lambda: settled(deployment.log(), during, deliveries=50),
        timeout=90,
        what="the records of the outage written once the database is back",
        log=deployment.recorder_log,
    )
    assert deployment.log().event_ids == dict.fromkeys(during, 1)
    page = get(f"{metrics_url}/metrics")[1]
    assert (value(page, "hookline_recorder_records_written_total", kind="event") or 0) >= 50
    assert get(f"{metrics_url}/readyz")[0] == 200


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_slow_to_write_delays_the_log_and_no_webhook(
    deployment: Deployment, hook_receiver: Receiver
) -> None:
    deployment.subscribe(f"{hook_receiver.url}/fine")
    deployment.recorder()
    deployment.worker()
    path = deployment.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path, isolation_level=None) as blocker:
        blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: every write waits behind it
        during = set(publish(deployment.env, count=20))
        wait_until(lambda: len(hook_receiver.on("/fine")) >= 20, timeout=30, what="deliveries meanwhile")
        assert set(deployment.log().event_ids).isdisjoint(during)  # read beside the lock: nothing yet
        blocker.execute("ROLLBACK")
    wait_until(
        lambda: settled(deployment.log(), during, deliveries=20),
        timeout=60,
        what="the records written once the lock is gone",
        log=deployment.recorder_log,
    )
    assert deployment.log().event_ids == dict.fromkeys(during, 1)


def test_an_event_whose_records_the_broker_refuses_is_rejected_to_xq_not_acked_without_them(
    deployment: Deployment, hook_receiver: Receiver, amqp_connection: pika.BlockingConnection
) -> None:
    deployment.subscribe(f"{hook_receiver.url}/fine")
    deployment.worker()
    amqp_connection.channel().queue_delete(f"{deployment.env['HOOKLINE_QUEUE_PREFIX']}.log")  # unroutable now
    [event] = publish(deployment.env)
    wait_until(lambda: deployment.queued("events.XQ") == 1, timeout=30, what="the event kept in events.XQ")
    assert [request.headers["webhook-id"] for request in hook_receiver.on("/fine")] == [event]


def write_errors(metrics_url: str) -> float:
    return value(get(f"{metrics_url}/metrics")[1], "hookline_recorder_write_errors_total") or 0


class database_down:  # noqa: N801 - reads as a with-statement
    """PostgreSQL refuses new connections to the database and drops the open ones, until the block ends."""

    def __init__(self, database_url: str) -> None:
        base, self.database = database_url.replace("+psycopg", "").rsplit("/", 1)
        self.admin_url = f"{base}/postgres"

    def __enter__(self) -> None:
        self._allow(False)
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (self.database,)
            )

    def __exit__(self, *_exc: object) -> None:
        self._allow(True)

    def _allow(self, allowed: bool) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {str(allowed).lower()}')


def test_a_message_that_is_not_a_log_message_is_parked_with_its_reason_and_the_next_is_written(
    deployment: Deployment, log_queue: Callable[[bytes], None], amqp_connection: pika.BlockingConnection
) -> None:
    log_queue(b"not json at all")
    log_queue(event_record("evt_after_garbage"))
    deployment.recorder()

    wait_until(lambda: "evt_after_garbage" in deployment.log().event_ids, timeout=30, what="the next one")
    invalid = f"{deployment.env['HOOKLINE_QUEUE_PREFIX']}.log.invalid"
    method, properties, body = amqp_connection.channel().basic_get(invalid, auto_ack=True)
    assert method is not None
    assert body == b"not json at all"
    assert properties is not None
    reason = (properties.headers or {}).get("x-hookline-reason")
    assert isinstance(reason, str)
    assert reason.startswith("not a log message")
    assert deployment.queued() == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sigterm_writes_the_batch_in_hand_before_the_recorder_exits(
    deployment: Deployment, log_queue: Callable[[bytes], None]
) -> None:
    # A batch lingers a minute: only SIGTERM makes the recorder write it now.
    recorder = deployment.recorder("--metrics-port", "0", "--linger-ms", "60000")
    log_queue(event_record("evt_held"))
    time.sleep(1)
    assert "evt_held" not in deployment.log().event_ids
    assert recorder.terminate(timeout=30) == 0
    assert deployment.log().event_ids == {"evt_held": 1}
    assert deployment.queued() == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_recorder_serves_its_own_metrics_and_health(
    deployment: Deployment, log_queue: Callable[[bytes], None]
) -> None:
    port = free_port()
    deployment.recorder("--metrics-port", str(port))
    log_queue(event_record("evt_counted"))
    wait_until(lambda: "evt_counted" in deployment.log().event_ids, timeout=30, what="the record")

    status, page = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    assert value(page, "hookline_recorder_records_written_total", kind="event") == 1
    assert value(page, "hookline_recorder_lag_seconds") is not None
    assert "hookline_deliveries_total" not in page  # a worker's series, never the recorder's
    status, body = get(f"http://127.0.0.1:{port}/healthz")
    assert (status, json.loads(body)["status"]) == (200, "ok")
    assert get(f"http://127.0.0.1:{port}/readyz")[0] == 200


def test_the_recorder_on_a_log_database_never_set_up_says_to_run_setup_in_one_line(
    hookline_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**hookline_env, "HOOKLINE_LOG_DATABASE_URL": f"sqlite:///{tmp_path / 'never.db'}"}
    result = run_hookline(env, "recorder", "--metrics-port", "0", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "hookline setup" in result.stderr
