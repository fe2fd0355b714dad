"""``hookline subscriptions`` through the root command, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import Engine
from support.secrets import box_with_the_test_key

from workers.cli import cli, main
from workers.errors import DatabaseNotMigrated, InvalidSubscription, SubscriptionNotFound
from workers.outbound.signing import generate_secret
from workers.subscriptions import db, migrating
from workers.subscriptions.store import MASKED_SECRET, Subscription, SubscriptionStore

pytestmark = pytest.mark.integration

URL = "https://example.com/hooks"


class Hookline:
    """Runs ``hookline`` in-process against one database, and reads that database directly."""

    def __init__(self, database_url: str, engine: Engine) -> None:
        self.env = {"HOOKLINE_DATABASE_URL": database_url}
        self.store = SubscriptionStore(engine, box_with_the_test_key())

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner().invoke(cli, ["subscriptions", *args], env={**self.env, **(env or {})})

    def json(self, *args: str, env: dict[str, str] | None = None) -> Any:
        result = self.run(*args, "--json", env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def add(self, *events: str, url: str = URL) -> Subscription:
        record = self.json("add", "--url", url, *(arg for event in events for arg in ("--event", event)))
        return self.store.get(record["id"])


@pytest.fixture
def hookline(database_url: str) -> Iterator[Hookline]:
    migrating.migrate(database_url)
    engine = db.create_engine(database_url)
    yield Hookline(database_url, engine)
    engine.dispose()


def test_add_prints_the_new_subscription_with_its_secret_once(hookline: Hookline) -> None:
    result = hookline.run("add", "--url", URL, "--event", "order.*", "--event", "invoice.paid")

    assert result.exit_code == 0, result.output
    (added,) = hookline.store.load_all()
    assert f"Added subscription {added.id}." in result.stdout
    assert added.secret in result.stdout
    assert "Give this secret to the receiver now" in result.stdout
    assert added.event_patterns == ("order.*", "invoice.paid")


def test_add_with_json_prints_a_machine_readable_record_with_rfc3339_times(hookline: Hookline) -> None:
    secret = generate_secret()

    record = hookline.json("add", "--url", URL, "--event", "#", "--secret", secret, "--description", "crm")

    stored = hookline.store.get(record["id"])
    assert (record["secret"], stored.secret) == (secret, secret)
    assert (record["url"], record["event_patterns"], record["description"]) == (URL, ["#"], "crm")
    assert record["enabled"] is True
    assert record["rotating"] is False
    assert datetime.fromisoformat(record["created_at"]) == stored.created_at
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", record["created_at"])


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--url", "https:///x", "--event", "order.*"], "URL must name a host"),
        (["--url", "https://u:pw@example.com", "--event", "order.*"], "must not contain credentials"),
        (["--url", URL, "--event", "order.*", "--event", "ord*"], "'*' and '#' must stand alone"),
        (
            ["--url", URL, "--event", "order.*", "--secret", "whsec_QUJDRA=="],
            "secret must hold 24 to 64 bytes",
        ),
    ],
)
def test_add_refuses_invalid_input_and_writes_nothing(
    hookline: Hookline, args: list[str], reason: str
) -> None:
    existing = hookline.add("existing")

    result = hookline.run("add", *args)

    assert result.exit_code == 1
    assert isinstance(result.exception, InvalidSubscription)
    assert reason in str(result.exception)
    assert hookline.store.load_all() == [existing]


def test_add_without_an_event_is_a_usage_error(hookline: Hookline) -> None:
    result = hookline.run("add", "--url", URL)

    assert result.exit_code == 2
    assert "Missing option '--event'" in result.output
    assert hookline.store.load_all() == []


def test_list_shows_a_table_without_secrets(hookline: Hookline) -> None:
    first, second = hookline.add("order.*", "invoice.#"), hookline.add("#")

    result = hookline.run("list")

    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "URL", "EVENTS", "ENABLED", "DESCRIPTION"]
    assert [row.split()[:4] for row in rows] == [
        [first.id, URL, "order.*,invoice.#", "yes"],
        [second.id, URL, "#", "yes"],
    ]
    assert "whsec_" not in result.stdout


def test_list_filters_on_enabled_and_disabled(hookline: Hookline) -> None:
    on, off = hookline.add("a"), hookline.add("b")
    hookline.store.set_enabled(off.id, False)

    assert [record["id"] for record in hookline.json("list")] == [on.id, off.id]
    assert [record["id"] for record in hookline.json("list", "--enabled")] == [on.id]
    assert [record["id"] for record in hookline.json("list", "--disabled")] == [off.id]


def test_list_shows_why_each_disabled_subscription_is_disabled(hookline: Hookline) -> None:
    healthy, gone, manual = hookline.add("a"), hookline.add("b"), hookline.add("c")
    hookline.store.disable_gone(gone.id, datetime.now(UTC))
    hookline.run("disable", manual.id)

    result = hookline.run("list")

    assert result.exit_code == 0, result.output
    cells = [re.split(r"\s{2,}", row) for row in result.stdout.splitlines()[1:]]
    assert {row[0]: row[3] for row in cells} == {
        healthy.id: "yes",
        gone.id: "no (gone)",
        manual.id: "no (manual)",
    }
    reasons = {record["id"]: record["disabled_reason"] for record in hookline.json("list")}
    assert reasons == {healthy.id: None, gone.id: "gone", manual.id: "manual"}


def test_show_and_list_with_json_report_failing_since_and_when_and_why_it_was_disabled(
    hookline: Hookline,
) -> None:
    added = hookline.add("order.*")
    failing_since = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    hookline.store.mark_failing(added.id, failing_since)
    hookline.store.disable_if_failing_since(
        added.id, before=failing_since, now=failing_since + timedelta(days=5)
    )

    shown = hookline.json("show", added.id)
    (listed,) = hookline.json("list")

    assert shown == listed
    assert shown["enabled"] is False
    assert shown["disabled_reason"] == "failing"
    assert datetime.fromisoformat(shown["failing_since"]) == failing_since
    assert datetime.fromisoformat(shown["disabled_at"]) == failing_since + timedelta(days=5)


def test_show_of_a_healthy_subscription_has_no_reason_and_no_failure(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    result = hookline.run("show", added.id)

    assert result.exit_code == 0, result.output
    for field in ("disabled_reason", "disabled_at", "failing_since"):
        assert re.search(rf"^{field}\s+-$", result.stdout, re.MULTILINE)


def test_enable_resumes_a_gone_subscription_and_forgets_why_it_was_disabled(hookline: Hookline) -> None:
    added = hookline.add("order.*")
    hookline.store.mark_failing(added.id, datetime.now(UTC))
    hookline.store.disable_gone(added.id, datetime.now(UTC))

    record = hookline.json("enable", added.id)

    assert record["enabled"] is True
    assert (record["disabled_reason"], record["disabled_at"], record["failing_since"]) == (None, None, None)
    assert hookline.store.get(added.id).enabled is True


def test_list_with_json_masks_every_secret(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    (record,) = hookline.json("list")

    assert record["secret"] == MASKED_SECRET
    assert added.secret not in json.dumps(record)


def test_list_of_an_empty_store_says_so(hookline: Hookline) -> None:
    result = hookline.run("list")

    assert (result.exit_code, result.stdout) == (0, "No subscriptions.\n")


def test_show_masks_the_secret_unless_asked(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    masked = hookline.run("show", added.id)
    shown = hookline.json("show", added.id, "--show-secret")

    assert masked.exit_code == 0, masked.output
    assert added.id in masked.stdout
    assert added.secret not in masked.stdout
    assert re.search(r"^secret\s+whsec_…$", masked.stdout, re.MULTILINE)
    assert shown["secret"] == added.secret


def test_show_of_an_unknown_id_fails_with_a_clear_error(hookline: Hookline) -> None:
    result = hookline.run("show", "sub_nope")

    assert result.exit_code == 1
    assert isinstance(result.exception, SubscriptionNotFound)
    assert str(result.exception) == "no subscription with id 'sub_nope'"


def test_the_hookline_entry_point_prints_an_unknown_id_as_one_line(
    hookline: Hookline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOOKLINE_DATABASE_URL", hookline.env["HOOKLINE_DATABASE_URL"])

    with pytest.raises(SystemExit) as exited:
        main(["subscriptions", "disable", "sub_nope"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == "hookline: no subscription with id 'sub_nope'\n"


def test_disable_and_enable_change_what_is_stored(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    disabled = hookline.json("disable", added.id)
    assert disabled["enabled"] is False
    assert hookline.store.get(added.id).enabled is False

    enabled = hookline.run("enable", added.id)
    assert enabled.exit_code == 0, enabled.output
    assert re.search(r"^enabled\s+yes$", enabled.stdout, re.MULTILINE)
    assert hookline.store.get(added.id).enabled is True


@pytest.mark.parametrize("command", ["enable", "disable", "remove", "rotate-secret"])
def test_commands_on_an_unknown_id_exit_1_and_change_nothing(hookline: Hookline, command: str) -> None:
    existing = hookline.add("order.*")

    result = hookline.run(command, "sub_nope")

    assert result.exit_code == 1
    assert isinstance(result.exception, SubscriptionNotFound)
    assert hookline.store.load_all() == [existing]


def test_remove_with_yes_deletes_the_subscription(hookline: Hookline) -> None:
    kept, removed = hookline.add("a"), hookline.add("b")

    result = hookline.run("remove", removed.id, "--yes")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"Removed subscription {removed.id}.\n"
    assert hookline.store.load_all() == [kept]
    assert hookline.json("remove", kept.id, "--yes") == {"id": kept.id, "removed": True}


def test_rotate_secret_prints_the_new_secret_and_when_the_old_one_expires(hookline: Hookline) -> None:
    added = hookline.add("order.*")

    result = hookline.run("rotate-secret", added.id, "--grace", "3600")

    assert result.exit_code == 0, result.output
    rotated = hookline.store.get(added.id)
    assert rotated.previous_secret == added.secret
    assert rotated.previous_secret_expires_at is not None
    assert f"New secret for {added.id}: {rotated.secret}" in result.stdout
    until = rotated.previous_secret_expires_at.isoformat(timespec="seconds")
    assert f"The old secret stays valid until {until}." in result.stdout
    assert added.secret not in result.stdout


def test_rotate_secret_defaults_its_grace_to_the_setting(hookline: Hookline) -> None:
    added = hookline.add("order.*")
    before = datetime.now(UTC)

    grace_setting = {"HOOKLINE_SECRET_ROTATION_GRACE_SECONDS": "120"}
    record = hookline.json("rotate-secret", added.id, env=grace_setting)

    expires_at = datetime.fromisoformat(record["previous_secret_expires_at"])
    assert before + timedelta(seconds=120) <= expires_at <= datetime.now(UTC) + timedelta(seconds=120)
    assert record["secret"] == hookline.store.get(added.id).secret
    assert record["previous_secret"] == MASKED_SECRET
    assert record["rotating"] is True


def test_rotate_secret_with_zero_grace_and_a_given_secret_drops_the_old_one(hookline: Hookline) -> None:
    added = hookline.add("order.*")
    new_secret = generate_secret()

    result = hookline.run("rotate-secret", added.id, "--secret", new_secret, "--grace", "0")

    assert result.exit_code == 0, result.output
    assert "The old secret is no longer valid" in result.stdout
    assert hookline.store.get(added.id).active_secrets(datetime.now(UTC)) == (new_secret,)


@pytest.mark.parametrize(
    ("args", "exit_code"),
    [(["--secret", "not-a-secret"], 1), (["--grace", "-5"], 2)],
)
def test_rotate_secret_refuses_bad_input_and_keeps_the_secret(
    hookline: Hookline, args: list[str], exit_code: int
) -> None:
    added = hookline.add("order.*")

    result = hookline.run("rotate-secret", added.id, *args)

    assert result.exit_code == exit_code
    assert hookline.store.get(added.id) == added


def test_every_command_on_an_unmigrated_database_asks_for_hookline_setup(sqlite_url: str) -> None:
    env = {"HOOKLINE_DATABASE_URL": sqlite_url}

    result = CliRunner().invoke(cli, ["subscriptions", "add", "--url", URL, "--event", "#"], env=env)

    assert result.exit_code == 1
    assert isinstance(result.exception, DatabaseNotMigrated)
    assert "run `hookline setup`" in str(result.exception)
    listed = CliRunner().invoke(cli, ["subscriptions", "list"], env=env)
    assert isinstance(listed.exception, DatabaseNotMigrated)


def test_a_bad_database_setting_is_reported_without_touching_any_database() -> None:
    env = {"HOOKLINE_DATABASE_URL": "mysql://root:hunter2@db/hookline"}

    result = CliRunner().invoke(cli, ["subscriptions", "list"], env=env)

    assert result.exit_code == 1
    assert "HOOKLINE_DATABASE_URL" in str(result.exception)
    assert "hunter2" not in str(result.exception)
