"""``hookline replay`` and ``subscriptions resume --replay`` on the real broker, SQLite and PostgreSQL.

The log is seeded through ``LogStore.write``; what a replay publishes is read
back from the retries and log queues. Where the test needs the recorder, it
writes what the log queue holds to the store itself, as the recorder would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dramatiq
import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine
from standardwebhooks import Webhook
from support.logrecords import attempt, body, event, state
from support.processes import Worker, run_hookline, wait_until
from support.publishing import publish
from support.receiver import Receiver

from workers.broker.nodes import Nodes
from workers.broker.topology import RETRY_ACTOR, Topology
from workers.cli import cli
from workers.deliverylog import records
from workers.deliverylog.records import DeliveryState, Record, StateRecord
from workers.deliverylog.store import LogStore
from workers.errors import ReplayError, RetryNotStored
from workers.subscriptions import db

pytestmark = pytest.mark.integration

HOUR = 3600.0
DAY = 24 * HOUR
DEAD, RETRYING = DeliveryState.DEAD_LETTERED, DeliveryState.RETRYING


class Hookline:
    """One isolated hookline after `hookline setup`: commands in-process, the log and queues read directly."""

    def __init__(self, env: dict[str, str], engine: Engine) -> None:
        self.env = env
        self.log = LogStore(engine)
        self.topology = Topology(env["HOOKLINE_EXCHANGE"], env["HOOKLINE_QUEUE_PREFIX"])

    def run(self, *args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env, input=stdin)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def subscription(self, url: str = "https://example.com/hooks") -> str:
        return str(self.json("subscriptions", "add", "--url", url, "--event", "#")["id"])

    def replay(self, subscription_id: str, *args: str, stdin: str | None = None) -> Result:
        return self.run("replay", "--subscription", subscription_id, *args, stdin=stdin)

    def take(self, queue: str) -> list[bytes]:
        """The bodies in ``queue``, removed from it."""
        bodies: list[bytes] = []
        connection = Nodes(self.env["HOOKLINE_AMQP_URL"]).connect()
        try:
            channel = connection.channel()
            while True:
                method, _properties, message = channel.basic_get(queue, auto_ack=True)
                if method is None or message is None:
                    return bodies
                bodies.append(message)
        finally:
            connection.close()

    def take_retry_messages(self) -> list[dramatiq.Message[Any]]:
        return [dramatiq.Message.decode(message) for message in self.take(self.topology.retries_queue)]

    def take_retries(self) -> list[dict[str, Any]]:
        """The deliveries in the retries queue, in order, taken out of it and out of their batches."""
        return [each for message in self.take_retry_messages() for each in message.kwargs["deliveries"]]

    def take_log(self) -> list[Record]:
        return [
            record for message in self.take(self.topology.log_queue) for record in records.decode(message)
        ]

    def record(self) -> list[Record]:
        """Write what the log queue holds to the log, as ``hookline recorder`` does."""
        taken = self.take_log()
        self.log.write(taken)
        return taken


@pytest.fixture
def hookline(hookline_env: dict[str, str], database_url: str) -> Iterator[Hookline]:
    env = {**hookline_env, "HOOKLINE_DATABASE_URL": database_url}
    run_hookline(env, "setup")
    engine = db.create_engine(database_url)
    yield Hookline(env, engine)
    engine.dispose()


@pytest.fixture
def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.cli.interaction.stdin_is_terminal", lambda: True)


def seed_one_of_each(hookline: Hookline, subscription_id: str, other_id: str) -> None:
    """An hour of traffic: one delivery in each state, one for another subscription, one too old."""
    now = time.time()
    hookline.log.write(
        [
            event("evt_dead", at=now - 50 * 60),
            attempt("evt_dead", subscription_id, 8, at=now - 50 * 60, state=DEAD, status=503),
            event("evt_retrying", at=now - 40 * 60),
            attempt("evt_retrying", subscription_id, 1, at=now - 40 * 60, state=RETRYING, status=500),
            event("evt_delivered", at=now - 30 * 60),
            attempt("evt_delivered", subscription_id, 1, at=now - 30 * 60, state=DeliveryState.DELIVERED),
            event("evt_skipped", at=now - 20 * 60),
            state("evt_skipped", subscription_id, DeliveryState.SKIPPED, at=now - 20 * 60, reason="paused"),
            event("evt_elsewhere", at=now - 10 * 60),
            attempt("evt_elsewhere", other_id, 8, at=now - 10 * 60, state=DEAD, status=503),
            event("evt_old", at=now - 3 * HOUR),
            attempt("evt_old", subscription_id, 8, at=now - 3 * HOUR, state=DEAD, status=503),
        ]
    )


@pytest.fixture
def seeded(hookline: Hookline) -> str:
    subscription_id, other_id = hookline.subscription(), hookline.subscription()
    seed_one_of_each(hookline, subscription_id, other_id)
    return subscription_id


def test_a_dry_run_lists_the_failed_deliveries_of_the_range_oldest_first_and_sends_nothing(
    hookline: Hookline, seeded: str
) -> None:
    plan = hookline.json("replay", "--subscription", seeded, "--since", "1h", "--dry-run")

    assert [item["event_id"] for item in plan["to_send"]] == ["evt_dead", "evt_retrying"]
    assert [item["state"] for item in plan["to_send"]] == ["dead_lettered", "retrying"]
    assert (plan["subscription_id"], plan["state"], plan["until"]) == (seeded, "failed", None)
    assert hookline.take_retries() == []
    assert hookline.take_log() == []


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("dead", ["evt_dead"]),
        ("skipped", ["evt_skipped"]),
        ("all", ["evt_dead", "evt_retrying", "evt_delivered", "evt_skipped"]),
    ],
)
def test_each_state_resends_the_deliveries_whose_latest_run_is_in_it(
    hookline: Hookline, seeded: str, selection: str, expected: list[str]
) -> None:
    result = hookline.replay(seeded, "--since", "1h", "--state", selection, "--yes")

    assert result.exit_code == 0, result.output
    assert [delivery["event_id"] for delivery in hookline.take_retries()] == expected


def test_until_ends_the_range(hookline: Hookline, seeded: str) -> None:
    plan = hookline.json("replay", "--subscription", seeded, "--since", "4h", "--until", "45m", "--dry-run")

    assert [item["event_id"] for item in plan["to_send"]] == ["evt_old", "evt_dead"]


def test_a_replay_sends_each_delivery_again_with_its_webhook_id_in_a_run_of_its_own_and_tells_the_log(
    hookline: Hookline, seeded: str
) -> None:
    result = hookline.replay(seeded, "--since", "1h", "--yes")

    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"2 deliveries of {seeded} to resend (state failed, received ")
    assert "  evt_dead  order.created  dead_lettered\n" in result.stderr
    assert result.stdout.endswith("2 replayed, 0 without a payload\n")
    (message,) = hookline.take_retry_messages()
    assert (message.actor_name, message.queue_name) == (RETRY_ACTOR, hookline.topology.retries_queue)
    sent = message.kwargs["deliveries"]
    dead = sent[0]
    assert (dead["event_id"], dead["subscription_id"], dead["attempt"]) == ("evt_dead", seeded, 1)
    assert dead["payload"] == body(event="evt_dead")
    runs = [delivery["run"] for delivery in sent]
    assert all(run.startswith("rp_") for run in runs)
    assert len(set(runs)) == 2
    assert f"replayed   evt_dead  run {runs[0]}" in result.stdout
    told = hookline.take_log()
    assert [(each.event_id, each.run) for each in told] == [("evt_dead", runs[0]), ("evt_retrying", runs[1])]
    assert all(isinstance(each, StateRecord) for each in told)
    assert {(each.state, each.reason, each.attempts) for each in told if isinstance(each, StateRecord)} == {
        (DeliveryState.PENDING, "replayed", 0)
    }


def test_a_second_replay_once_the_log_recorded_the_first_sends_nothing_again(
    hookline: Hookline, seeded: str
) -> None:
    first = hookline.json("replay", "--subscription", seeded, "--since", "1h", "--yes")
    hookline.take_retries()
    hookline.record()

    second = hookline.replay(seeded, "--since", "1h", "--yes", "--json")

    assert len(first["replayed"]) == 2
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["replayed"] == []
    assert second.stderr.startswith(f"0 deliveries of {seeded} to resend")
    assert hookline.take_retries() == []
    history = hookline.log.event("evt_dead")
    assert sorted(each.delivery.state for each in history.deliveries) == [
        DeliveryState.DEAD_LETTERED,
        DeliveryState.PENDING,
    ]


def test_off_a_terminal_without_yes_it_refuses_before_reading_anything_and_sends_nothing(
    hookline: Hookline, seeded: str
) -> None:
    result = hookline.replay(seeded, "--since", "1h")

    assert result.exit_code == 1
    assert result.stderr == (
        "Error: not replaying: no terminal to confirm on; pass --yes to replay anyway, or --dry-run to look\n"
    )
    assert hookline.take_retries() == []


def test_on_a_terminal_it_says_what_it_would_resend_and_sends_nothing_on_no(
    hookline: Hookline, seeded: str, on_a_terminal: None
) -> None:
    result = hookline.replay(seeded, "--since", "1h", stdin="n\n")

    assert result.exit_code == 1
    assert "  evt_retrying  order.created  retrying\n" in result.stderr
    assert f"Resend 2 deliveries to {seeded}? [y/N]" in result.stderr
    assert result.stderr.endswith("Nothing sent.\n")
    assert hookline.take_retries() == []
    assert hookline.take_log() == []


def test_on_a_terminal_it_sends_on_yes(hookline: Hookline, seeded: str, on_a_terminal: None) -> None:
    result = hookline.replay(seeded, "--since", "1h", stdin="y\n")

    assert result.exit_code == 0, result.output
    assert [delivery["event_id"] for delivery in hookline.take_retries()] == ["evt_dead", "evt_retrying"]


def test_a_disabled_subscription_is_refused_and_nothing_is_sent(hookline: Hookline, seeded: str) -> None:
    hookline.run("subscriptions", "pause", seeded)

    result = hookline.replay(seeded, "--since", "1h", "--yes")

    assert result.exit_code == 1
    assert isinstance(result.exception, ReplayError)
    assert f"subscription {seeded} is disabled" in str(result.exception)
    assert f"`hookline subscriptions resume {seeded} --replay`" in str(result.exception)
    assert hookline.take_retries() == []


def test_a_removed_subscription_is_refused(hookline: Hookline, seeded: str) -> None:
    hookline.run("subscriptions", "remove", seeded, "--yes")

    result = hookline.replay(seeded, "--since", "1h", "--yes")

    assert result.exit_code == 1
    assert str(result.exception) == f"no subscription with id {seeded!r} (removed?)"
    assert hookline.take_retries() == []


def test_an_event_whose_payload_the_log_no_longer_keeps_is_listed_and_the_replay_exits_1(
    hookline: Hookline, database_url: str
) -> None:
    subscription_id = hookline.subscription()
    now = time.time()
    kept, forgotten = event("evt_kept", at=now - 60), event("evt_forgotten", at=now - 2 * DAY)
    hookline.log.write(
        [
            forgotten,
            attempt("evt_forgotten", subscription_id, 8, at=now - 2 * DAY, state=DEAD),
            kept,
            attempt("evt_kept", subscription_id, 8, at=now - 60, state=DEAD),
        ]
    )
    engine = db.create_engine(database_url)
    # As with HOOKLINE_LOG_PAYLOAD_RETENTION=1d (PostgreSQL forgets whole days, so two days back).
    LogStore(engine, payload_retention=DAY).enforce_retention()
    engine.dispose()

    result = hookline.replay(subscription_id, "--since", "3d", "--yes")

    assert result.exit_code == 1
    assert "1 delivery cannot be resent: the log no longer keeps the payload" in result.stderr
    assert "no payload evt_forgotten" in result.stderr
    assert [delivery["event_id"] for delivery in hookline.take_retries()] == ["evt_kept"]


def test_a_broker_without_the_retries_queue_stops_the_replay_with_one_line_saying_how_far_it_got(
    hookline: Hookline, seeded: str
) -> None:
    connection = Nodes(hookline.env["HOOKLINE_AMQP_URL"]).connect()
    connection.channel().queue_delete(hookline.topology.retries_queue)
    connection.close()

    result = hookline.replay(seeded, "--since", "1h", "--yes")

    assert result.exit_code == 1
    assert isinstance(result.exception, RetryNotStored)
    assert str(result.exception) == (
        f"0 of 2 replayed, then evt_dead and on not confirmed: the broker has no queue "
        f"{hookline.topology.retries_queue} (run `hookline setup`)"
    )
    assert hookline.take_log() == []


def test_resume_replay_resends_what_was_skipped_while_paused_and_nothing_from_before(
    hookline: Hookline,
) -> None:
    subscription_id = hookline.subscription()
    now = time.time()
    hookline.log.write(
        [
            event("evt_before", at=now - HOUR),
            state("evt_before", subscription_id, DeliveryState.SKIPPED, at=now - HOUR, reason="paused"),
        ]
    )
    hookline.run("subscriptions", "pause", subscription_id)
    hookline.log.write(
        [
            event("evt_while", at=time.time()),
            state("evt_while", subscription_id, DeliveryState.SKIPPED, at=time.time(), reason="paused"),
        ]
    )

    resumed = hookline.json("subscriptions", "resume", subscription_id, "--replay", "--yes")

    assert resumed["enabled"] is True
    assert [item["event_id"] for item in resumed["replay"]["replayed"]] == ["evt_while"]
    assert [delivery["event_id"] for delivery in hookline.take_retries()] == ["evt_while"]


def test_resume_replay_answered_no_resumes_replays_nothing_and_prints_the_command_for_later(
    hookline: Hookline, on_a_terminal: None
) -> None:
    subscription_id = hookline.subscription()
    hookline.run("subscriptions", "pause", subscription_id)
    hookline.log.write(
        [
            event("evt_while", at=time.time()),
            state("evt_while", subscription_id, DeliveryState.SKIPPED, at=time.time(), reason="paused"),
        ]
    )
    paused_at = hookline.json("subscriptions", "show", subscription_id)["disabled_at"]

    result = hookline.run("subscriptions", "resume", subscription_id, "--replay", stdin="n\n")

    assert result.exit_code == 1
    assert f"Resend 1 delivery to {subscription_id}? [y/N]" in result.stderr
    since = (datetime.fromisoformat(paused_at) - timedelta(minutes=1)).isoformat(timespec="seconds")
    assert result.stderr.endswith(
        f"Resumed; nothing replayed. Later: hookline replay --subscription {subscription_id} "
        f"--state skipped --since {since}\n"
    )
    assert hookline.json("subscriptions", "show", subscription_id)["enabled"] is True
    assert hookline.take_retries() == []


def start_worker(hookline: Hookline, workers: list[Worker], log: Path) -> None:
    worker = Worker(hookline.env, log)
    workers.append(worker)
    worker.start([hookline.topology.events_queue, hookline.topology.retries_queue])


def logged(hookline: Hookline, subscription_id: str, state: DeliveryState) -> set[str]:
    """The events whose delivery to the subscription the log holds in ``state``, once it wrote the queue."""
    hookline.record()
    found = hookline.log.replay_candidates(subscription_id, datetime.now(UTC) - timedelta(hours=1))
    return {candidate.event_id for candidate in found if candidate.state is state}


def test_a_dead_letter_replayed_from_the_log_reaches_the_endpoint_signed_with_its_webhook_id(
    hookline: Hookline, hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    added = hookline.json("subscriptions", "add", "--url", f"{hook_receiver.url}/late", "--event", "#")
    now = time.time()
    hookline.log.write(
        [event("evt_given_up", at=now - 60), attempt("evt_given_up", added["id"], 8, at=now - 60, state=DEAD)]
    )
    start_worker(hookline, workers, tmp_path / "worker.log")

    result = hookline.replay(added["id"], "--since", "1h", "--yes")

    assert result.exit_code == 0, result.output
    wait_until(lambda: len(hook_receiver.on("/late")) == 1, timeout=30, what="the replayed webhook")
    (received,) = hook_receiver.on("/late")
    assert received.headers["webhook-id"] == "evt_given_up"
    assert Webhook(added["secret"]).verify(received.body, received.headers)["data"] == {
        "event": "evt_given_up"
    }
    wait_until(
        lambda: logged(hookline, added["id"], DeliveryState.DELIVERED) == {"evt_given_up"},
        timeout=30,
        what="the replay's attempt in the log",
    )
    runs = {each.delivery.run: each.delivery.state for each in hookline.log.event("evt_given_up").deliveries}
    assert runs.pop("") is DEAD
    ((replay_run, replay_state),) = runs.items()
    assert (replay_run[:3], replay_state) == ("rp_", DeliveryState.DELIVERED)


def test_a_paused_subscription_loses_no_event_once_resumed_with_replay(
    hookline: Hookline, hook_receiver: Receiver, workers: list[Worker], tmp_path: Path
) -> None:
    added = hookline.json("subscriptions", "add", "--url", f"{hook_receiver.url}/paused", "--event", "#")
    start_worker(hookline, workers, tmp_path / "worker.log")
    hookline.run("subscriptions", "pause", added["id"])
    time.sleep(0.5)  # the announcement's round trip and one SELECT take milliseconds

    published = set(publish(hookline.env, count=5))
    wait_until(
        lambda: logged(hookline, added["id"], DeliveryState.SKIPPED) == published,
        timeout=30,
        what="five skipped deliveries in the log",
    )
    assert hook_receiver.on("/paused") == []
    result = hookline.run("subscriptions", "resume", added["id"], "--replay", "--yes")

    assert result.exit_code == 0, result.output
    wait_until(lambda: len(hook_receiver.on("/paused")) == 5, timeout=30, what="the replayed webhooks")
    received = hook_receiver.on("/paused")
    assert {request.headers["webhook-id"] for request in received} == published
    for request in received:
        Webhook(added["secret"]).verify(request.body, request.headers)
