"""``hookline dlq``: list, show, replay and purge dead letters on the real broker."""

from __future__ import annotations

import json
import threading
from typing import Any

import dramatiq
import pika
import pytest
from click.testing import CliRunner, Result
from support.deadletters import dead_letter
from support.processes import messages, queue_exists, run_hookline, run_json, wait_until

from producer.settings import redacted_url
from workers.broker.topology import RETRY_ACTOR, Topology
from workers.cli import cli
from workers.errors import DeadLetterError, DeadLetterNotFound
from workers.ops import dlq, queuereader
from workers.pipeline.deadletters import DeadLetter
from workers.pipeline.delivery import Delivery
from workers.settings import Settings
from workers.subscriptions.db import create_engine
from workers.subscriptions.secretbox import SecretBox
from workers.subscriptions.store import SubscriptionStore

pytestmark = pytest.mark.integration


class Hookline:
    """One isolated hookline after `hookline setup`: dlq commands run in-process, queues read directly."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.amqp_url = env["HOOKLINE_AMQP_URL"]
        self.topology = Topology(exchange=env["HOOKLINE_EXCHANGE"], prefix=env["HOOKLINE_QUEUE_PREFIX"])
        self.dead_queue = self.topology.dead_letters_queue

    def run(self, *args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=stdin)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def subscription(self) -> str:
        record = self.json("subscriptions", "add", "--url", "https://example.com/hooks", "--event", "#")
        return str(record["id"])

    def park(self, *letters: DeadLetter) -> None:
        with self.channel() as channel:
            for letter in letters:
                channel.basic_publish("", self.dead_queue, letter.to_json(), letter.properties(None))

    def park_raw(self, body: bytes, message_id: str) -> None:
        with self.channel() as channel:
            channel.basic_publish("", self.dead_queue, body, pika.BasicProperties(message_id=message_id))

    def dead_letter_ids(self) -> list[str]:
        """The ids in the dead-letters queue, in order, all left in place."""
        ids: list[str] = []
        with self.channel() as channel:
            while True:
                method, properties, _body = channel.basic_get(self.dead_queue)
                if method is None or properties is None:
                    return ids
                ids.append(str(properties.message_id))

    def take_retries(self) -> list[dramatiq.Message[Any]]:
        """The messages in the retries queue, removed from it."""
        taken: list[dramatiq.Message[Any]] = []
        with self.channel() as channel:
            while True:
                method, _properties, body = channel.basic_get(self.topology.retries_queue, auto_ack=True)
                if method is None or body is None:
                    return taken
                taken.append(dramatiq.Message.decode(body))

    def channel(self) -> Any:
        return _Channel(self.amqp_url)


class _Channel:
    """A channel that is closed on exit, so whatever it did not ack returns to its queue."""

    def __init__(self, amqp_url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))

    def __enter__(self) -> Any:
        return self.connection.channel()

    def __exit__(self, *_: object) -> None:
        self.connection.close()


@pytest.fixture
def hookline(hookline_env: dict[str, str]) -> Hookline:
    run_hookline(hookline_env, "setup")
    return Hookline(hookline_env)


def test_list_shows_every_dead_letter_with_the_total_and_leaves_them_in_the_queue(hookline: Hookline) -> None:
    subscription = hookline.subscription()
    letters = [dead_letter(subscription), dead_letter(subscription, event_type="invoice.paid")]
    hookline.park(*letters)

    result = hookline.run("dlq", "list")

    assert result.exit_code == 0, result.output
    header, *rows, total = result.stdout.splitlines()
    assert header.split() == [
        "ID", "SUBSCRIPTION", "EVENT_TYPE", "EVENT_ID", "ATTEMPTS", "CAUSE", "LAST", "DEAD_LETTERED_AT"
    ]  # fmt: skip
    assert [row.split()[:6] for row in rows] == [
        [letter.id, subscription, letter.event_type, letter.event_id, "5", "exhausted"] for letter in letters
    ]
    assert "503 http_status" in rows[0]
    assert total == f"2 shown; 2 dead letters in {hookline.dead_queue}"
    assert sorted(hookline.dead_letter_ids()) == sorted(letter.id for letter in letters)  # see below


def test_list_with_a_subscription_shows_only_that_subscriptions_dead_letters(hookline: Hookline) -> None:
    mine, theirs = hookline.subscription(), hookline.subscription()
    hookline.park(dead_letter(theirs), dead_letter(mine), dead_letter(theirs), dead_letter(mine))

    listed = hookline.json("dlq", "list", "--subscription", mine)

    assert [record["subscription_id"] for record in listed["dead_letters"]] == [mine, mine]
    assert listed["total"] == 4
    assert messages(hookline.amqp_url, hookline.dead_queue) == 4


def test_list_stops_at_the_limit_but_counts_the_whole_queue(hookline: Hookline) -> None:
    subscription = hookline.subscription()
    letters = [dead_letter(subscription) for _ in range(5)]
    hookline.park(*letters)

    listed = hookline.json("dlq", "list", "--limit", "2")

    assert [record["id"] for record in listed["dead_letters"]] == [letters[0].id, letters[1].id]
    assert listed["total"] == 5
    # All still there. In order only on classic queues: a quorum queue (RabbitMQ 3.10) puts
    # back what a closed channel held unacked in the order it processes the returns.
    assert sorted(hookline.dead_letter_ids()) == sorted(letter.id for letter in letters)


def test_list_sorts_by_when_each_was_dead_lettered_and_pages_with_offset(hookline: Hookline) -> None:
    subscription = hookline.subscription()
    by_age = [dead_letter(subscription, age=age) for age in (500, 400, 300, 200, 100)]  # oldest first
    hookline.park(by_age[3], by_age[0], by_age[4], by_age[2], by_age[1])

    listed = hookline.json("dlq", "list", "--offset", "2", "--limit", "2")

    assert [record["id"] for record in listed["dead_letters"]] == [by_age[2].id, by_age[3].id]
    assert listed["total"] == 5


def test_list_with_json_prints_every_field_as_a_program_reads_it(hookline: Hookline) -> None:
    letter = dead_letter(hookline.subscription())
    hookline.park(letter)

    listed = run_json(hookline.env, "dlq", "list")

    assert listed["queue"] == hookline.dead_queue
    assert listed["dead_letters"] == [{**letter.to_record(), "malformed": False}]


def test_list_finds_a_match_behind_more_dead_letters_than_a_usual_prefetch_window(
    hookline: Hookline,
) -> None:
    crowd, wanted = hookline.subscription(), hookline.subscription()
    hookline.park(*(dead_letter(crowd) for _ in range(700)))
    last = dead_letter(wanted)
    hookline.park(last)

    listed = hookline.json("dlq", "list", "--subscription", wanted)

    assert [record["id"] for record in listed["dead_letters"]] == [last.id]
    assert listed["total"] == 701
    wait_until(lambda: messages(hookline.amqp_url, hookline.dead_queue) == 701, timeout=5, what="requeue")


def test_list_shows_a_body_that_is_not_a_dead_letter_by_its_message_id(hookline: Hookline) -> None:
    hookline.park_raw(b"{not json", message_id="dl_garbled")
    letter = dead_letter(hookline.subscription())
    hookline.park(letter)

    text = hookline.run("dlq", "list")
    listed = hookline.json("dlq", "list")

    assert text.exit_code == 0, text.output
    assert "dl_garbled" in text.stdout
    assert "(not a dead letter)" in text.stdout
    parsed, garbled = listed["dead_letters"]  # without a date of its own, it comes last
    assert (garbled["id"], garbled["malformed"], garbled["body"]) == ("dl_garbled", True, "{not json")
    assert garbled["problem"].startswith("not a dead letter")
    assert parsed["id"] == letter.id


def test_show_prints_one_dead_letter_with_every_field_and_its_payload(hookline: Hookline) -> None:
    subscription = hookline.subscription()
    letter, other = dead_letter(subscription), dead_letter(subscription)
    hookline.park(other, letter)

    text = hookline.run("dlq", "show", letter.id)
    shown = hookline.json("dlq", "show", letter.id)

    assert text.exit_code == 0, text.output
    assert letter.payload in text.stdout
    assert f"last_error        {letter.last_error}" in text.stdout
    assert shown == {**letter.to_record(), "malformed": False}
    assert sorted(hookline.dead_letter_ids()) == sorted([other.id, letter.id])


def test_show_of_an_unknown_id_says_so_in_one_line_and_exits_1(hookline: Hookline) -> None:
    hookline.park(dead_letter(hookline.subscription()))

    result = run_hookline(hookline.env, "dlq", "show", "dl_nonexistent", check=False)

    assert result.returncode == 1
    assert result.stderr == f"hookline: no dead letter with id 'dl_nonexistent' in {hookline.dead_queue}\n"


def test_show_finds_a_dead_letter_that_another_reader_gives_back_while_it_looks(hookline: Hookline) -> None:
    letter = dead_letter(hookline.subscription())
    hookline.park(letter)
    settings = Settings()
    holder = pika.BlockingConnection(pika.URLParameters(hookline.amqp_url))
    held = holder.channel()
    assert held.basic_get(hookline.dead_queue)[0] is not None  # taken, unacked: not counted as ready
    closing = threading.Timer(0.3, holder.close)

    closing.start()
    found = dlq.find(settings, letter.id)
    closing.join()

    assert found.id == letter.id


def test_show_of_an_unknown_id_answers_without_waiting_when_no_one_else_reads_the_queue(
    hookline: Hookline, monkeypatch: pytest.MonkeyPatch
) -> None:
    hookline.park(dead_letter(hookline.subscription()))
    settings = Settings()
    waits: list[float] = []
    monkeypatch.setattr(queuereader.time, "sleep", waits.append)

    with pytest.raises(DeadLetterNotFound):
        dlq.find(settings, "dl_nonexistent")

    assert waits == []


def test_replay_by_id_moves_the_dead_letter_to_the_retries_queue_as_attempt_1_of_the_retry_actor(
    hookline: Hookline,
) -> None:
    subscription = hookline.subscription()
    letter, other = dead_letter(subscription), dead_letter(subscription)
    hookline.park(letter, other)

    result = hookline.run("dlq", "replay", letter.id)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"replayed   {letter.id}\n1 replayed, 0 refused\n"
    (retry,) = hookline.take_retries()
    assert (retry.actor_name, retry.queue_name, retry.args) == (
        RETRY_ACTOR,
        hookline.topology.retries_queue,
        (),
    )
    (replayed,) = retry.kwargs["deliveries"]
    assert replayed["run"].startswith("rp_")  # a new run: the log keeps its attempts beside the old ones
    assert (
        replayed
        == Delivery(
            subscription,
            letter.event_id,
            letter.event_type,
            letter.event_timestamp,
            letter.payload,
            run=replayed["run"],
        ).to_message()
    )
    assert replayed["attempt"] == 1
    assert hookline.dead_letter_ids() == [other.id]


def test_replay_by_subscription_replays_only_that_subscriptions_dead_letters(hookline: Hookline) -> None:
    mine, theirs = hookline.subscription(), hookline.subscription()
    kept, first, second = dead_letter(theirs), dead_letter(mine), dead_letter(mine)
    hookline.park(first, kept, second)

    report = hookline.json("dlq", "replay", "--subscription", mine)

    assert report == {"replayed": [first.id, second.id], "refused": [], "not_found": []}
    assert [message.kwargs["deliveries"][0]["event_id"] for message in hookline.take_retries()] == [
        first.event_id,
        second.event_id,
    ]
    assert hookline.dead_letter_ids() == [kept.id]


def test_replay_all_replays_every_dead_letter_and_empties_the_queue(hookline: Hookline) -> None:
    letters = [dead_letter(hookline.subscription()) for _ in range(3)]
    hookline.park(*letters)

    report = hookline.json("dlq", "replay", "--all")

    assert report["replayed"] == [letter.id for letter in letters]
    assert len(hookline.take_retries()) == 3
    assert hookline.dead_letter_ids() == []


def test_replay_refuses_a_dead_letter_whose_subscription_is_disabled_and_leaves_it_in_place(
    hookline: Hookline,
) -> None:
    disabled, enabled = hookline.subscription(), hookline.subscription()
    hookline.json("subscriptions", "disable", disabled)
    refused, replayed = dead_letter(disabled), dead_letter(enabled)
    hookline.park(refused, replayed)

    result = hookline.run("dlq", "replay", "--all")

    assert result.exit_code == 1
    assert f"refused    {refused.id}: subscription {disabled} is disabled" in result.stderr
    assert f"replayed   {replayed.id}" in result.stdout
    assert hookline.dead_letter_ids() == [refused.id]
    assert [message.kwargs["deliveries"][0]["event_id"] for message in hookline.take_retries()] == [
        replayed.event_id
    ]


def test_replay_refuses_a_dead_letter_whose_subscription_was_removed_and_leaves_it_in_place(
    hookline: Hookline,
) -> None:
    removed = hookline.subscription()
    hookline.json("subscriptions", "remove", removed, "--yes")
    letter = dead_letter(removed)
    hookline.park(letter)

    result = run_hookline(hookline.env, "dlq", "replay", "--json", letter.id, check=False)

    assert result.returncode == 1
    assert json.loads(result.stdout) == {
        "replayed": [],
        "refused": [{"id": letter.id, "reason": f"subscription {removed} was removed"}],
        "not_found": [],
    }
    assert hookline.dead_letter_ids() == [letter.id]
    assert hookline.take_retries() == []


def test_replay_refuses_a_body_that_is_not_a_dead_letter_and_leaves_it_in_place(hookline: Hookline) -> None:
    hookline.park_raw(b"[1, 2]", message_id="dl_list")

    report = hookline.run("dlq", "replay", "--json", "--all")

    assert report.exit_code == 1
    (refusal,) = json.loads(report.stdout)["refused"]
    assert refusal["id"] == "dl_list"
    assert refusal["reason"].startswith("not a dead letter")
    assert hookline.dead_letter_ids() == ["dl_list"]


def test_replay_reports_an_unknown_id_as_not_found_and_exits_1(hookline: Hookline) -> None:
    letter = dead_letter(hookline.subscription())
    hookline.park(letter)

    result = hookline.run("dlq", "replay", letter.id, "dl_nonexistent")

    assert result.exit_code == 1
    assert "not found  dl_nonexistent" in result.stderr
    assert result.stdout.endswith("1 replayed, 0 refused, 1 not found\n")
    assert hookline.dead_letter_ids() == []


def test_replay_leaves_the_dead_letter_in_place_when_the_publish_is_not_confirmed(
    hookline: Hookline,
) -> None:
    letter = dead_letter(hookline.subscription())
    hookline.park(letter)
    with hookline.channel() as channel:
        channel.queue_delete(hookline.topology.retries_queue)  # a mandatory publish now comes back
    settings = Settings()
    engine = create_engine(settings.database_url)

    store = SubscriptionStore(engine, SecretBox.from_settings(settings))
    report = dlq.replay(settings, dlq.Selection.of_ids([letter.id]), store)

    engine.dispose()

    assert report.replayed == []
    assert [refusal.id for refusal in report.refused] == [letter.id]
    assert report.refused[0].reason.startswith("not confirmed")
    assert hookline.dead_letter_ids() == [letter.id]


@pytest.mark.parametrize(
    "selection",
    [(), ("--all", "dl_x"), ("--all", "--subscription", "sub_x"), ("--subscription", "sub_x", "dl_x")],
)
def test_replay_needs_exactly_one_selection(hookline: Hookline, selection: tuple[str, ...]) -> None:
    hookline.park(dead_letter(hookline.subscription()))

    result = hookline.run("dlq", "replay", *selection)

    assert result.exit_code == 2
    assert "give exactly one of --all, --subscription or ID..." in result.stderr
    assert messages(hookline.amqp_url, hookline.dead_queue) == 1


def test_purge_by_id_removes_only_those_dead_letters(hookline: Hookline) -> None:
    subscription = hookline.subscription()
    first, kept, second = (dead_letter(subscription) for _ in range(3))
    hookline.park(first, kept, second)

    report = hookline.json("dlq", "purge", "--yes", second.id, first.id)

    assert report == {"purged": 2, "ids": [first.id, second.id], "not_found": []}
    assert hookline.dead_letter_ids() == [kept.id]


def test_purge_older_than_removes_only_dead_letters_parked_longer_ago(hookline: Hookline) -> None:
    subscription = hookline.subscription()
    old, recent = dead_letter(subscription, age=3 * 86400), dead_letter(subscription, age=3600)
    hookline.park(recent, old)

    result = hookline.run("dlq", "purge", "--older-than", "2d", "--yes")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"purged     {old.id}\n1 dead letter purged\n"
    assert hookline.dead_letter_ids() == [recent.id]


def test_purge_all_empties_the_queue(hookline: Hookline) -> None:
    hookline.park(*(dead_letter(hookline.subscription()) for _ in range(3)))
    hookline.park_raw(b"garbage", message_id="dl_garbage")

    report = run_json(hookline.env, "dlq", "purge", "--all", "--yes")

    assert report == {"purged": 4, "ids": None, "not_found": []}
    assert messages(hookline.amqp_url, hookline.dead_queue) == 0


def test_purge_without_yes_and_without_a_terminal_refuses_and_removes_nothing(hookline: Hookline) -> None:
    hookline.park(dead_letter(hookline.subscription()))

    result = hookline.run("dlq", "purge", "--all", stdin="y\n")

    assert result.exit_code == 1
    assert "no terminal to confirm on; pass --yes" in result.stderr
    assert messages(hookline.amqp_url, hookline.dead_queue) == 1


@pytest.fixture
def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.cli.interaction.stdin_is_terminal", lambda: True)


def test_purge_asks_how_many_will_be_removed_and_removes_them_once_confirmed(
    hookline: Hookline, on_a_terminal: None
) -> None:
    subscription = hookline.subscription()
    old, recent = dead_letter(subscription, age=7200), dead_letter(subscription, age=10)
    hookline.park(old, recent, dead_letter(subscription, age=9000))

    result = hookline.run("dlq", "purge", "--older-than", "1h", stdin="y\n")

    assert result.exit_code == 0, result.output
    assert f"Remove 2 dead letters from {hookline.dead_queue} for good? [y/N]" in result.stderr
    assert hookline.dead_letter_ids() == [recent.id]


def test_purge_removes_nothing_when_the_confirmation_is_declined(
    hookline: Hookline, on_a_terminal: None
) -> None:
    hookline.park(dead_letter(hookline.subscription()))

    result = hookline.run("dlq", "purge", "--all", stdin="n\n")

    assert result.exit_code == 1
    assert "Nothing removed." in result.stderr
    assert messages(hookline.amqp_url, hookline.dead_queue) == 1


@pytest.mark.parametrize("selection", [(), ("--all", "--older-than", "1d"), ("--older-than", "1d", "dl_x")])
def test_purge_needs_exactly_one_selection(hookline: Hookline, selection: tuple[str, ...]) -> None:
    hookline.park(dead_letter(hookline.subscription()))

    result = hookline.run("dlq", "purge", "--yes", *selection)

    assert result.exit_code == 2
    assert "give exactly one of --all, --older-than or ID..." in result.stderr
    assert messages(hookline.amqp_url, hookline.dead_queue) == 1


def test_a_broker_that_cannot_be_reached_is_named_without_its_password(hookline_env: dict[str, str]) -> None:
    settings = Settings(amqp_url="amqp://guest:s3cret-pw@127.0.0.1:1/%2F")

    with pytest.raises(DeadLetterError) as raised:
        dlq.browse(settings)

    assert "amqp://guest:***@127.0.0.1:1/%2F" in str(raised.value)
    assert "s3cret-pw" not in str(raised.value)


def test_list_with_a_mistyped_prefix_says_the_queue_is_missing_and_creates_nothing(
    hookline_env: dict[str, str],
) -> None:
    mistyped = {**hookline_env, "HOOKLINE_QUEUE_PREFIX": hookline_env["HOOKLINE_QUEUE_PREFIX"] + "x"}
    result = run_hookline(mistyped, "dlq", "list", check=False)
    dead_letters = f"{mistyped['HOOKLINE_QUEUE_PREFIX']}.deliveries.dead"
    assert result.returncode == 1
    where = redacted_url(mistyped["HOOKLINE_AMQP_URL"])
    expected = (
        f"hookline: NOT_FOUND - no queue '{dead_letters}' in vhost '/' on {where}: "
        "check HOOKLINE_QUEUE_PREFIX, or run `hookline setup`"
    )
    assert result.stderr.strip().splitlines() == [expected]
    assert not queue_exists(mistyped["HOOKLINE_AMQP_URL"], dead_letters)
    assert not queue_exists(mistyped["HOOKLINE_AMQP_URL"], f"{mistyped['HOOKLINE_QUEUE_PREFIX']}.retries")
