"""``hookline events`` and ``hookline deliveries`` through the root command, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner, Result
from support.logrecords import attempt, event, state

from workers.cli import cli, main
from workers.deliverylog.records import DeliveryState, Record, delivery_id
from workers.deliverylog.schema import migrate_log
from workers.deliverylog.store import LogStore
from workers.errors import LogEntryNotFound
from workers.subscriptions import db

pytestmark = pytest.mark.integration

SUB_A, SUB_B = "sub_aaaaaaaaaaaaaaaaaaaa", "sub_bbbbbbbbbbbbbbbbbbbb"
HOUR = 3600.0


class Hookline:
    """Runs ``hookline`` in-process against one log database."""

    def __init__(self, database_url: str) -> None:
        self.env = {"HOOKLINE_DATABASE_URL": database_url}

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env)

    def json(self, *args: str) -> Any:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def hookline(database_url: str) -> Hookline:
    """A log of evt_new (a minute ago: delivered to A after a 503, skipped for B) and evt_old (3 h ago)."""
    engine = db.create_engine(database_url)
    migrate_log(engine)
    now = time.time()
    records: list[Record] = [
        event("evt_new", at=now - 60, matched=2),
        attempt(
            "evt_new", SUB_A, 1, at=now - 59, state=DeliveryState.RETRYING, status=503, response="down\n!"
        ),
        attempt("evt_new", SUB_A, 2, at=now - 50, state=DeliveryState.DELIVERED),
        state("evt_new", SUB_B, DeliveryState.SKIPPED, at=now - 60, reason="subscription_paused"),
        event("evt_old", at=now - 3 * HOUR, event_type="invoice.paid"),
        attempt(
            "evt_old",
            SUB_A,
            1,
            at=now - 3 * HOUR,
            state=DeliveryState.DEAD_LETTERED,
            status=410,
            event_type="invoice.paid",
        ),
    ]
    LogStore(engine).write(records)
    engine.dispose()
    return Hookline(database_url)


def test_events_show_prints_the_payload_and_each_delivery_with_its_attempts(hookline: Hookline) -> None:
    result = hookline.run("events", "show", "evt_new")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", "evt_new"]
    assert lines[1].split() == ["type", "order.created"]
    assert any(line.startswith("payload") and '"event":"evt_new"' in line for line in lines)
    dlv_a, dlv_b = delivery_id("evt_new", SUB_A), delivery_id("evt_new", SUB_B)
    assert f"{dlv_a}  {SUB_A}: delivered, 2 attempts, last 200" in lines
    assert f"{dlv_b}  {SUB_B}: skipped, 0 attempts, last subscription_paused" in lines
    assert "attempt 1 response: down\\n!" in lines
    header = next(line for line in lines if line.startswith("ATTEMPT"))
    assert header.split() == [
        "ATTEMPT",
        "STARTED_AT",
        "DURATION",
        "STATUS",
        "REASON",
        "STATE",
        "NEXT_ATTEMPT_AT",
    ]


def test_events_show_json_holds_the_payload_as_json_and_every_attempt(hookline: Hookline) -> None:
    shown = hookline.json("events", "show", "evt_new")

    assert shown["event"]["payload"]["data"] == {"event": "evt_new"}
    assert shown["event"]["matched"] == 2
    delivered, skipped = shown["deliveries"]
    assert (delivered["subscription_id"], delivered["state"], delivered["attempt_count"]) == (
        SUB_A,
        "delivered",
        2,
    )
    assert [(each["attempt"], each["status"], each["state"]) for each in delivered["attempts"]] == [
        (1, 503, "retrying"),
        (2, 200, "delivered"),
    ]
    assert delivered["attempts"][0]["response_body"] == "down\n!"
    assert (skipped["state"], skipped["attempts"]) == ("skipped", [])


def test_deliveries_list_json_pages_newest_first_with_the_cursor_it_prints(hookline: Hookline) -> None:
    first = hookline.json("deliveries", "list", "--limit", "2")
    second = hookline.json("deliveries", "list", "--limit", "2", "--cursor", first["next_cursor"])

    seen = [
        (each["event_id"], each["subscription_id"]) for each in first["deliveries"] + second["deliveries"]
    ]
    assert sorted(seen[:2]) == [("evt_new", SUB_A), ("evt_new", SUB_B)]
    assert seen[2:] == [("evt_old", SUB_A)]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--subscription", SUB_B], [("evt_new", SUB_B)]),
        (["--state", "dead_lettered"], [("evt_old", SUB_A)]),
        (["--event-type", "invoice.*"], [("evt_old", SUB_A)]),
        (["--since", "1h", "--subscription", SUB_A], [("evt_new", SUB_A)]),
        (["--until", "2h"], [("evt_old", SUB_A)]),
    ],
)
def test_deliveries_list_filters(
    hookline: Hookline, options: list[str], expected: list[tuple[str, str]]
) -> None:
    listed = hookline.json("deliveries", "list", *options)

    assert [(each["event_id"], each["subscription_id"]) for each in listed["deliveries"]] == expected


def test_deliveries_list_prints_a_table_and_the_command_for_the_next_page(hookline: Hookline) -> None:
    result = hookline.run("deliveries", "list", "--limit", "1", "--event-type", "#")

    assert result.exit_code == 0, result.output
    header, row, footer = result.stdout.splitlines()
    assert header.split() == [
        "ID",
        "RECEIVED_AT",
        "EVENT_TYPE",
        "EVENT_ID",
        "SUBSCRIPTION",
        "STATE",
        "ATTEMPTS",
        "LAST",
    ]
    assert "evt_new" in row
    assert footer.startswith(
        "1 shown; next page: hookline deliveries list --event-type '#' --limit 1 --cursor "
    )
    cursor = footer.rsplit(" ", 1)[1]
    following = hookline.json("deliveries", "list", "--limit", "1", "--event-type", "#", "--cursor", cursor)
    assert following["deliveries"][0]["event_id"] == "evt_new"


def test_deliveries_show_json_has_the_event_and_every_attempt(hookline: Hookline) -> None:
    shown = hookline.json("deliveries", "show", delivery_id("evt_old", SUB_A))

    assert (shown["state"], shown["last_status"], shown["event_type"]) == (
        "dead_lettered",
        410,
        "invoice.paid",
    )
    assert shown["event"]["id"] == "evt_old"
    assert "payload" not in shown["event"]
    assert [each["id"] for each in shown["attempts"]] == [f"{delivery_id('evt_old', SUB_A)}.1"]


def test_deliveries_show_prints_its_fields_then_its_attempts(hookline: Hookline) -> None:
    result = hookline.run("deliveries", "show", delivery_id("evt_new", SUB_A))

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["id", delivery_id("evt_new", SUB_A)]
    assert ["run", "-"] in [line.split() for line in lines]
    assert "attempt 1 error: attempt 1 failed" in lines


def test_an_unknown_id_is_one_line_and_exit_1(
    hookline: Hookline, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = hookline.run("deliveries", "show", "dlv_nope")
    assert isinstance(result.exception, LogEntryNotFound)
    monkeypatch.setenv("HOOKLINE_DATABASE_URL", hookline.env["HOOKLINE_DATABASE_URL"])

    with pytest.raises(SystemExit) as exited:
        main(["events", "show", "evt_nope"])

    assert exited.value.code == 1
    assert capsys.readouterr().err == "hookline: no event with id 'evt_nope' in the delivery log\n"


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        (
            ["--cursor", "abc"],
            "Invalid value for '--cursor': not a cursor printed by `hookline deliveries list`",
        ),
        (["--since", "yesterday"], "Invalid value for '--since': 'yesterday' is neither a duration"),
        (["--event-type", "ord*"], "Invalid value for '--event-type': event pattern 'ord*'"),
        (["--state", "lost"], "Invalid value for '--state'"),
    ],
)
def test_bad_input_to_deliveries_list_is_a_usage_error(
    hookline: Hookline, options: list[str], complaint: str
) -> None:
    result = hookline.run("deliveries", "list", *options)

    assert result.exit_code == 2
    assert complaint in result.output


def test_on_a_log_never_set_up_the_commands_say_to_run_setup(sqlite_url: str) -> None:
    result = Hookline(sqlite_url).run("deliveries", "list")

    assert result.exit_code == 1
    assert "is not migrated to the current schema: run `hookline setup`" in str(result.exception)
