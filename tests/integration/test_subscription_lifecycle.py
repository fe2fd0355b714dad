"""``hookline subscriptions`` update, pause, resume, remove and test, on SQLite and PostgreSQL.

Commands run in-process against the real broker (the change announcements)
and, for ``test``, a pytest-httpserver endpoint on loopback whose requests
are verified with the ``standardwebhooks`` library.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from support.secrets import box_with_the_test_key

from workers.broker import changes
from workers.broker.nodes import Nodes
from workers.broker.topology import Topology
from workers.cli import cli
from workers.deliverylog.schema import migrate_log
from workers.errors import InvalidSubscription
from workers.subscriptions import db, migrating
from workers.subscriptions.store import Subscription, SubscriptionStore

pytestmark = pytest.mark.integration

URL = "https://example.com/hooks"


class Hookline:
    """``hookline subscriptions`` in-process on one database and broker prefix; the store read directly."""

    def __init__(self, env: dict[str, str], store: SubscriptionStore) -> None:
        self.env = env
        self.store = store

    def run(self, *args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(cli, ["subscriptions", *args], env=self.env, input=stdin)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def add(self, *events: str, url: str = URL) -> Subscription:
        record = self.json("add", "--url", url, *(arg for event in events for arg in ("--event", event)))
        return self.store.get(record["id"])


@pytest.fixture
def hookline(hookline_env: dict[str, str], database_url: str) -> Iterator[Hookline]:
    migrating.migrate(database_url)
    engine = db.create_engine(database_url)
    migrate_log(engine)
    yield Hookline(
        {**hookline_env, "HOOKLINE_DATABASE_URL": database_url},
        SubscriptionStore(engine, box_with_the_test_key()),
    )
    engine.dispose()
    exchange = Topology(hookline_env["HOOKLINE_EXCHANGE"], hookline_env["HOOKLINE_QUEUE_PREFIX"])
    connection = Nodes(hookline_env["HOOKLINE_AMQP_URL"]).connect()
    connection.channel().exchange_delete(exchange.subscription_changes_exchange)
    connection.close()


@pytest.fixture
def on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("workers.cli.interaction.stdin_is_terminal", lambda: True)


class Announcements:
    """Listens on the subscription-changes exchange as a worker process does, and counts what it hears."""

    def __init__(self, env: dict[str, str]) -> None:
        self.heard = threading.Event()
        exchange = Topology(
            env["HOOKLINE_EXCHANGE"], env["HOOKLINE_QUEUE_PREFIX"]
        ).subscription_changes_exchange
        self.listener = changes.Listener(env["HOOKLINE_AMQP_URL"], exchange, self.heard.set)


@pytest.fixture
def announcements(hookline: Hookline) -> Iterator[Announcements]:
    heard = Announcements(hookline.env)
    heard.listener.start()
    assert heard.listener.wait_listening(10)
    yield heard
    heard.listener.stop()


def test_update_changes_url_events_and_description_keeps_id_and_secret_and_tells_the_workers(
    hookline: Hookline, announcements: Announcements
) -> None:
    added = hookline.add("order.*")
    announcements.heard.clear()

    record = hookline.json(
        "update",
        added.id,
        "--url",
        "https://example.org/new",
        "--event",
        "invoice.#",
        "--event",
        "refund.*",
        "--description",
        "billing",
    )

    stored = hookline.store.get(added.id)
    assert (stored.id, stored.secret) == (added.id, added.secret)
    assert (stored.url, stored.event_patterns, stored.description) == (
        "https://example.org/new",
        ("invoice.#", "refund.*"),
        "billing",
    )
    assert (record["id"], record["url"], record["event_patterns"]) == (
        added.id,
        stored.url,
        ["invoice.#", "refund.*"],
    )
    assert added.secret not in json.dumps(record)
    assert announcements.heard.wait(5), "the workers were not told of the update"


def test_update_of_the_description_alone_leaves_url_and_events_as_they_were(hookline: Hookline) -> None:
    added = hookline.add("order.*", "invoice.paid")

    result = hookline.run("update", added.id, "--description", "crm")

    assert result.exit_code == 0, result.output
    assert re.search(r"^description\s+crm$", result.stdout, re.MULTILINE)
    stored = hookline.store.get(added.id)
    assert (stored.url, stored.event_patterns, stored.description) == (
        URL,
        ("order.*", "invoice.paid"),
        "crm",
    )


def test_an_update_with_nothing_to_change_is_a_usage_error_that_changes_nothing(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    result = hookline.run("update", added.id)

    assert result.exit_code == 2
    assert "nothing to update: give --url, --event or --description" in result.output
    assert hookline.store.get(added.id) == added


def test_an_update_is_validated_like_add_and_writes_nothing_when_any_part_is_invalid(
    hookline: Hookline,
) -> None:
    added = hookline.add("order.*")

    result = hookline.run("update", added.id, "--url", "https://example.org/new", "--event", "ord*")

    assert result.exit_code == 1
    assert isinstance(result.exception, InvalidSubscription)
    assert "'*' and '#' must stand alone" in str(result.exception)
    assert hookline.store.get(added.id) == added


def test_pause_and_resume_are_disable_and_enable(hookline: Hookline, announcements: Announcements) -> None:
    added = hookline.add("order.*")
    announcements.heard.clear()

    paused = hookline.json("pause", added.id)

    assert (paused["enabled"], paused["disabled_reason"]) == (False, "manual")
    assert paused["disabled_at"] is not None
    assert announcements.heard.wait(5), "the workers were not told of the pause"
    resumed = hookline.json("resume", added.id)
    assert (resumed["enabled"], resumed["disabled_reason"], resumed["disabled_at"]) == (True, None, None)
    assert hookline.store.get(added.id).enabled is True


def test_resume_replay_of_a_subscription_that_was_not_paused_says_so_and_changes_nothing(
    hookline: Hookline,
) -> None:
    added = hookline.add("order.*")

    result = hookline.run("resume", added.id, "--replay", "--yes")

    assert result.exit_code == 0, result.output
    assert f"{added.id} was not disabled: nothing to replay" in result.stderr
    assert hookline.store.get(added.id).enabled is True


def test_resume_replay_off_a_terminal_without_yes_refuses_and_leaves_it_paused(hookline: Hookline) -> None:
    added = hookline.add("order.*")
    hookline.run("pause", added.id)

    result = hookline.run("resume", added.id, "--replay")

    assert result.exit_code == 1
    assert "no terminal to confirm on; pass --yes" in result.stderr
    assert hookline.store.get(added.id).enabled is False


def test_remove_off_a_terminal_without_yes_refuses_and_keeps_the_subscription(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    result = hookline.run("remove", added.id)

    assert result.exit_code == 1
    assert "not removing: no terminal to confirm on; pass --yes to remove anyway" in result.stderr
    assert hookline.store.get(added.id) == added


def test_remove_on_a_terminal_asks_and_keeps_the_subscription_on_no(
    hookline: Hookline, on_a_terminal: None
) -> None:
    added = hookline.add("order.*", "invoice.paid")

    result = hookline.run("remove", added.id, stdin="n\n")

    assert result.exit_code == 1
    assert f"Remove {added.id} (example.com, order.*,invoice.paid) for good?" in result.stderr
    assert "Nothing done." in result.stderr
    assert hookline.store.get(added.id) == added


def test_remove_on_a_terminal_removes_on_yes_and_tells_the_workers(
    hookline: Hookline, on_a_terminal: None, announcements: Announcements
) -> None:
    kept, removed = hookline.add("a"), hookline.add("b")
    announcements.heard.clear()

    result = hookline.run("remove", removed.id, stdin="y\n")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"Removed subscription {removed.id}.\n"
    assert hookline.store.load_all() == [kept]
    assert announcements.heard.wait(5), "the workers were not told of the removal"


def test_remove_with_yes_does_not_ask(hookline: Hookline, on_a_terminal: None) -> None:
    added = hookline.add("order.*")

    assert hookline.json("remove", added.id, "--yes") == {"id": added.id, "removed": True}
    assert hookline.store.load_all() == []


def test_subscriptions_test_sends_a_signed_hookline_test_event_and_prints_the_answer(
    hookline: Hookline, httpserver: HTTPServer
) -> None:
    httpserver.expect_oneshot_request("/hooks", method="POST").respond_with_data("thanks, got it", status=202)
    added = hookline.add("order.*", url=httpserver.url_for("/hooks"))

    record = hookline.json("test", added.id)

    ((request, _response),) = httpserver.log
    body = request.get_data()
    verified = Webhook(added.secret).verify(body, dict(request.headers))
    assert verified["type"] == "hookline.test"
    assert verified["data"] == {"subscription_id": added.id}
    assert request.headers["webhook-id"] == record["webhook_id"]
    assert record["webhook_id"].startswith("evt_")
    assert (record["status"], record["ok"], record["body"], record["host"]) == (
        202,
        True,
        "thanks, got it",
        "localhost",
    )
    assert 0 < record["duration"] < 5


def test_subscriptions_test_shows_a_failing_answer_and_exits_1(
    hookline: Hookline, httpserver: HTTPServer
) -> None:
    httpserver.expect_oneshot_request("/hooks").respond_with_data("x" * 5000, status=503)
    added = hookline.add("order.*", url=httpserver.url_for("/hooks"))

    result = hookline.run("test", added.id)

    assert result.exit_code == 1
    assert re.search(r"^status\s+503$", result.stdout, re.MULTILINE)
    assert re.search(r"^ok\s+no$", result.stdout, re.MULTILINE)
    assert re.search(r"^body\s+x{1024}$", result.stdout, re.MULTILINE)


def test_subscriptions_test_to_an_address_the_guard_refuses_is_one_line_and_exit_1(
    hookline: Hookline, httpserver: HTTPServer
) -> None:
    added = hookline.add("order.*", url=httpserver.url_for("/hooks?token=s3cret"))
    guarded = {**hookline.env, "HOOKLINE_ALLOW_PRIVATE_NETWORKS": "false"}

    result = CliRunner().invoke(cli, ["subscriptions", "test", added.id], env=guarded)

    assert result.exit_code == 1
    assert result.stderr == (
        "hookline: no answer from localhost (blocked_address): "
        "refused to deliver to localhost (127.0.0.1): loopback address\n"
    )
    assert result.stdout == ""
    assert httpserver.log == []


def test_subscriptions_test_to_a_closed_port_is_one_line_and_exit_1(hookline: Hookline) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    added = hookline.add("order.*", url=f"http://127.0.0.1:{port}/hooks")

    result = hookline.run("test", added.id, "--json")

    assert result.exit_code == 1
    assert json.loads(result.stdout) | {"error": None} == {
        "subscription_id": added.id,
        "host": "127.0.0.1",
        "ok": False,
        "reason": "connect",
        "error": None,
    }
    assert re.fullmatch(
        r"hookline: no answer from 127\.0\.0\.1 \(connect\): connection failed: .+\n", result.stderr
    )
