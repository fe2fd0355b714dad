"""Events, deliveries and the log's status on a real ``hookline api``, on SQLite and on PostgreSQL.

The log is seeded through ``LogStore.write`` in the API's own database, as the
recorder would write it; what the API answers is compared with what the CLI
prints with ``--json`` for the same ids.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from support.api import Api, isolated_env, running_api
from support.logrecords import attempt, event, state
from support.processes import run_json

from workers.deliverylog.records import DeliveryState, Record, delivery_id
from workers.deliverylog.store import LogStore
from workers.subscriptions import db

pytestmark = pytest.mark.integration

SUB_A, SUB_B = "sub_aaaaaaaaaaaaaaaaaaaa", "sub_bbbbbbbbbbbbbbbbbbbb"
MINUTE = 60.0
NOW = time.time()


def seed(database_url: str) -> None:
    """evt_new (a minute ago: delivered to A after a 503, skipped for B), evt_paid, evt_old (an hour ago)."""
    records: list[Record] = [
        event("evt_new", at=NOW - MINUTE, matched=2),
        attempt("evt_new", SUB_A, 1, at=NOW - 59, state=DeliveryState.RETRYING, status=503, response="down"),
        attempt("evt_new", SUB_A, 2, at=NOW - 50, state=DeliveryState.DELIVERED),
        state("evt_new", SUB_B, DeliveryState.SKIPPED, at=NOW - MINUTE, reason="subscription_paused"),
        event("evt_paid", at=NOW - 30 * MINUTE, event_type="invoice.paid"),
        attempt(
            "evt_paid",
            SUB_B,
            1,
            at=NOW - 30 * MINUTE,
            state=DeliveryState.DELIVERED,
            event_type="invoice.paid",
        ),
        event("evt_old", at=NOW - 60 * MINUTE),
        attempt("evt_old", SUB_A, 8, at=NOW - 60 * MINUTE, state=DeliveryState.DEAD_LETTERED, status=410),
    ]
    engine = db.create_engine(database_url)
    try:
        LogStore(engine).write(records)
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    with isolated_env(directory, request.param) as env, running_api(env, directory / "api.log") as server:
        seed(env["HOOKLINE_DATABASE_URL"])
        yield server


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [each["event_id"] for each in response.json()["deliveries"]]


def cli_json(api: Api, *args: str) -> Any:
    """What ``hookline ARGS --json`` prints, with UTC times written as the API writes them (``Z``)."""
    return _zulu(run_json(api.env, *args))


def _zulu(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _zulu(each) for key, each in value.items()}
    if isinstance(value, list):
        return [_zulu(each) for each in value]
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00", value):
        return value.removesuffix("+00:00") + "Z"
    return value


def test_an_event_is_answered_with_its_payload_and_each_delivery_with_its_attempts(api: Api) -> None:
    response = api.call("GET", "/v1/events/evt_new")

    assert response.status_code == 200
    found = response.json()
    assert found["event"]["payload"]["data"] == {"event": "evt_new"}
    assert [(each["subscription_id"], each["state"]) for each in found["deliveries"]] == [
        (SUB_A, "delivered"),
        (SUB_B, "skipped"),
    ]
    first, second = found["deliveries"][0]["attempts"]
    assert (first["status"], first["response_body"], second["state"]) == (503, "down", "delivered")


def test_an_event_and_a_delivery_are_answered_as_the_cli_prints_them_with_json(api: Api) -> None:
    delivery = delivery_id("evt_new", SUB_A)

    assert api.call("GET", "/v1/events/evt_new").json() == cli_json(api, "events", "show", "evt_new")
    assert api.call("GET", f"/v1/deliveries/{delivery}").json() == cli_json(
        api, "deliveries", "show", delivery
    )
    page = api.call("GET", "/v1/deliveries", params={"limit": 2}).json()
    assert page == cli_json(api, "deliveries", "list", "--limit", "2")


def test_deliveries_are_listed_newest_first_a_page_at_a_time_to_the_last(api: Api) -> None:
    first = api.call("GET", "/v1/deliveries", params={"limit": 2}).json()
    second = api.call("GET", "/v1/deliveries", params={"limit": 2, "cursor": first["next_cursor"]}).json()

    assert [each["event_id"] for each in first["deliveries"] + second["deliveries"]] == [
        "evt_new",
        "evt_new",
        "evt_paid",
        "evt_old",
    ]
    assert second["next_cursor"] is None


def test_deliveries_are_filtered_by_subscription_event_type_pattern_state_and_time(api: Api) -> None:
    half_an_hour_ago = datetime.fromtimestamp(NOW - 45 * MINUTE, UTC).isoformat()
    ten_minutes_ago = datetime.fromtimestamp(NOW - 10 * MINUTE, UTC).isoformat()

    assert ids(api.call("GET", "/v1/deliveries", params={"subscription_id": SUB_B})) == [
        "evt_new",
        "evt_paid",
    ]
    assert ids(api.call("GET", "/v1/deliveries", params={"event_type": "invoice.*"})) == ["evt_paid"]
    assert ids(api.call("GET", "/v1/deliveries", params={"state": "dead_lettered"})) == ["evt_old"]
    assert ids(
        api.call("GET", "/v1/deliveries", params={"since": half_an_hour_ago, "until": ten_minutes_ago})
    ) == ["evt_paid"]


def test_a_delivery_is_answered_with_its_event_and_attempts(api: Api) -> None:
    response = api.call("GET", f"/v1/deliveries/{delivery_id('evt_old', SUB_A)}")

    assert response.status_code == 200
    found = response.json()
    assert (found["state"], found["last_status"], found["event"]["id"]) == ("dead_lettered", 410, "evt_old")
    assert "payload" not in found["event"]
    assert [each["attempt"] for each in found["attempts"]] == [8]


def test_a_read_only_key_reads_the_log(api: Api) -> None:
    assert api.call("GET", "/v1/events/evt_paid", key=api.read_only_key).status_code == 200
    assert api.call("GET", "/v1/deliveries", key=api.read_only_key).status_code == 200


def test_the_log_answers_no_one_without_a_key(api: Api) -> None:
    response = api.call("GET", "/v1/events/evt_new", key=None)

    assert response.status_code == 401
    assert response.json()["type"] == "urn:hookline:problem:unauthorized"


def test_an_unknown_event_or_delivery_is_a_404_problem_of_its_own_type(api: Api) -> None:
    event_missing = api.call("GET", "/v1/events/evt_nowhere")
    delivery_missing = api.call("GET", "/v1/deliveries/dlv_nowhere")

    assert (event_missing.status_code, delivery_missing.status_code) == (404, 404)
    assert event_missing.headers["content-type"] == "application/problem+json"
    assert event_missing.json()["type"] == "urn:hookline:problem:event-not-found"
    assert delivery_missing.json()["type"] == "urn:hookline:problem:delivery-not-found"
    assert "evt_nowhere" in event_missing.json()["detail"]


def test_an_event_id_with_a_slash_is_found_by_its_escaped_path(api: Api) -> None:
    response = api.call("GET", "/v1/events/orders%2F42")

    assert response.status_code == 404
    assert "'orders/42'" in response.json()["detail"]


def test_a_cursor_the_api_did_not_hand_out_is_refused_naming_the_cursor(api: Api) -> None:
    response = api.call("GET", "/v1/deliveries", params={"cursor": "bm90IGEgY3Vyc29y"})

    problem = response.json()
    assert response.status_code == 422
    assert problem["type"] == "urn:hookline:problem:invalid-cursor"
    assert [error["parameter"] for error in problem["errors"]] == ["cursor"]


def test_a_bad_pattern_and_a_time_without_offset_are_refused_naming_each_parameter(api: Api) -> None:
    pattern = api.call("GET", "/v1/deliveries", params={"event_type": "order..*"}).json()
    naive = api.call("GET", "/v1/deliveries", params={"since": "2026-03-10T12:00:00"}).json()

    assert (pattern["status"], naive["status"]) == (422, 422)
    assert [error["parameter"] for error in pattern["errors"]] == ["event_type"]
    assert "empty segment" in pattern["errors"][0]["detail"]
    assert [error["parameter"] for error in naive["errors"]] == ["since"]


def test_the_status_shows_the_log_queue_s_backlog_its_recorders_and_how_far_behind_their_last_write_was(
    api: Api,
) -> None:
    log = api.call("GET", "/v1/status", key=api.read_only_key).json()["log"]
    written_at = datetime.fromisoformat(log.pop("last_write_at")).timestamp()
    lag = log.pop("lag_seconds")

    assert log == {
        "enabled": True,
        "queue": f"{api.env['HOOKLINE_QUEUE_PREFIX']}.log",
        "messages": 0,
        "recorders": 0,
        "invalid": 0,
        "error": None,
    }
    assert NOW <= written_at <= time.time()  # the seed's write, made when the module's fixture began
    assert written_at - (NOW - 60 * MINUTE) == pytest.approx(lag, abs=0.01)  # its oldest record: evt_old
