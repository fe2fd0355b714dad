"""``/v1/subscriptions`` on a real ``hookline api``, once on SQLite and once on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook
from support.api import Api, isolated_env, running_api
from support.processes import run_json
from support.receiver import Receiver

from workers.broker import changes
from workers.broker.topology import Topology
from workers.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    with isolated_env(directory, request.param) as env, running_api(env, directory / "api.log") as server:
        yield server


def create(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"url": "https://example.com/hooks", "event_patterns": ["order.*"], **fields}
    response = api.call("POST", "/v1/subscriptions", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def test_a_created_subscription_carries_its_secret_once_and_its_address(api: Api) -> None:
    response = api.call(
        "POST", "/v1/subscriptions", json={"url": "https://example.com/a", "event_patterns": ["a.#"]}
    )

    created = response.json()
    assert response.status_code == 201
    assert response.headers["location"] == f"/v1/subscriptions/{created['id']}"
    assert created["secret"].startswith("whsec_")
    assert created["state"] == "healthy"
    shown = api.call("GET", response.headers["location"]).json()
    assert "secret" not in shown
    assert shown == {key: value for key, value in created.items() if key != "secret"}


def test_what_the_api_creates_the_cli_shows_with_the_same_fields(api: Api) -> None:
    created = create(api, description="from the API")

    shown = run_json(api.env, "subscriptions", "show", created["id"], "--show-secret")

    assert shown["secret"] == created["secret"]
    assert (shown["url"], shown["event_patterns"], shown["description"]) == (
        created["url"],
        created["event_patterns"],
        "from the API",
    )


def test_a_refused_field_is_named_by_a_pointer_in_the_problem(api: Api) -> None:
    response = api.call(
        "POST", "/v1/subscriptions", json={"url": "ftp://example.com", "event_patterns": ["a..b"]}
    )

    problem = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:hookline:problem:validation-error"
    assert {error["pointer"] for error in problem["errors"]} == {"#/url", "#/event_patterns"}


def test_a_missing_field_and_an_unknown_one_are_named_too(api: Api) -> None:
    response = api.call("POST", "/v1/subscriptions", json={"event_patterns": ["a"], "colour": "red"})

    assert response.status_code == 422
    assert {error["pointer"] for error in response.json()["errors"]} == {"#/url", "#/colour"}


def test_a_create_retried_with_its_idempotency_key_is_answered_again_not_done_twice(api: Api) -> None:
    body = {"url": "https://example.com/once", "event_patterns": ["once.*"]}
    headers = {"Idempotency-Key": "create-once-1"}

    first = api.call("POST", "/v1/subscriptions", json=body, headers=headers)
    again = api.call("POST", "/v1/subscriptions", json=body, headers=headers)

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    listed = api.call("GET", "/v1/subscriptions", params={"pattern": "once.*"}).json()["data"]
    assert [each["id"] for each in listed] == [first.json()["id"]]


def test_an_idempotency_key_sent_again_with_another_body_is_refused(api: Api) -> None:
    headers = {"Idempotency-Key": "create-once-2"}
    api.call(
        "POST",
        "/v1/subscriptions",
        json={"url": "https://example.com/x", "event_patterns": ["x"]},
        headers=headers,
    )

    response = api.call(
        "POST",
        "/v1/subscriptions",
        json={"url": "https://example.com/y", "event_patterns": ["y"]},
        headers=headers,
    )

    assert response.status_code == 422
    assert response.json()["type"] == "urn:hookline:problem:idempotency-key-reused"


def test_a_failed_create_leaves_its_idempotency_key_free_for_the_corrected_retry(api: Api) -> None:
    headers = {"Idempotency-Key": "create-once-3"}
    refused = api.call(
        "POST", "/v1/subscriptions", json={"url": "ftp://x", "event_patterns": ["z"]}, headers=headers
    )
    retried = api.call(
        "POST", "/v1/subscriptions", json={"url": "ftp://x", "event_patterns": ["z"]}, headers=headers
    )

    assert (refused.status_code, retried.status_code) == (422, 422)
    assert "idempotent-replayed" not in retried.headers


def test_pages_follow_their_cursors_through_every_subscription_once(api: Api) -> None:
    made = [create(api, event_patterns=["paged.event"])["id"] for _ in range(5)]

    seen: list[str] = []
    cursor = None
    while True:
        params = {"pattern": "paged.event", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.call("GET", "/v1/subscriptions", params=params).json()
        seen += [each["id"] for each in page["data"]]
        assert len(page["data"]) <= 2
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == made


def test_a_cursor_this_api_did_not_hand_out_is_refused(api: Api) -> None:
    response = api.call("GET", "/v1/subscriptions", params={"cursor": "not-a-cursor"})

    assert response.status_code == 422
    assert response.json()["type"] == "urn:hookline:problem:invalid-cursor"


def test_the_list_filters_by_state_and_by_the_event_types_a_subscription_receives(api: Api) -> None:
    paused = create(api, event_patterns=["filtered.#"])
    running = create(api, event_patterns=["filtered.order.created"])
    api.call("POST", f"/v1/subscriptions/{paused['id']}/pause")

    def ids(**params: str) -> set[str]:
        found = api.call("GET", "/v1/subscriptions", params={**params, "limit": "500"}).json()["data"]
        return {each["id"] for each in found} & {paused["id"], running["id"]}

    assert ids(event_type="filtered.order.created") == {paused["id"], running["id"]}
    assert ids(event_type="filtered.order.paid") == {paused["id"]}
    assert ids(state="disabled_manual") == {paused["id"]}
    assert ids(state="disabled") == {paused["id"]}
    assert ids(state="healthy") == {running["id"]}


def test_pause_and_resume_mean_what_the_cli_s_disable_and_enable_mean(api: Api) -> None:
    created = create(api)

    paused = api.call("POST", f"/v1/subscriptions/{created['id']}/pause").json()
    resumed = api.call("POST", f"/v1/subscriptions/{created['id']}/resume").json()

    assert (paused["enabled"], paused["state"], paused["disabled_reason"]) == (
        False,
        "disabled_manual",
        "manual",
    )
    assert (resumed["enabled"], resumed["state"], resumed["disabled_reason"]) == (True, "healthy", None)


def test_an_update_changes_only_what_it_gives_and_keeps_the_secret(api: Api) -> None:
    created = create(api, description="before")

    response = api.call("PATCH", f"/v1/subscriptions/{created['id']}", json={"event_patterns": ["changed.#"]})

    changed = response.json()
    assert response.status_code == 200
    assert (changed["event_patterns"], changed["url"], changed["description"]) == (
        ["changed.#"],
        created["url"],
        "before",
    )
    shown = run_json(api.env, "subscriptions", "show", created["id"], "--show-secret")
    assert shown["secret"] == created["secret"]


def test_a_rotated_secret_is_shown_once_and_the_old_one_signs_during_the_grace(api: Api) -> None:
    created = create(api)

    response = api.call(
        "POST", f"/v1/subscriptions/{created['id']}/rotate-secret", json={"grace_seconds": 3600}
    )

    rotated = response.json()
    assert response.status_code == 200
    assert rotated["secret"] not in (created["secret"], None)
    assert rotated["rotating"] is True
    assert rotated["previous_secret_expires_at"] is not None


def test_a_deleted_subscription_is_gone(api: Api) -> None:
    created = create(api)

    deleted = api.call("DELETE", f"/v1/subscriptions/{created['id']}")
    after = api.call("GET", f"/v1/subscriptions/{created['id']}")

    assert deleted.status_code == 204
    assert after.status_code == 404
    assert after.json()["type"] == "urn:hookline:problem:subscription-not-found"


def test_a_test_event_reaches_the_endpoint_signed_with_the_subscription_s_secret(
    api: Api, hook_receiver: Receiver
) -> None:
    created = create(api, url=f"{hook_receiver.url}/tested")

    response = api.call("POST", f"/v1/subscriptions/{created['id']}/test")

    result = response.json()
    assert response.status_code == 200
    assert (result["ok"], result["status"], result["host"]) == (True, 200, "127.0.0.1")
    (request,) = hook_receiver.on("/tested")
    assert Webhook(created["secret"]).verify(request.body, request.headers)["type"] == "hookline.test"


def test_a_test_with_no_answer_says_why(api: Api) -> None:
    created = create(api, url="http://127.0.0.1:9/nobody-listens")

    result = api.call("POST", f"/v1/subscriptions/{created['id']}/test").json()

    assert (result["ok"], result["reason"]) == (False, "connect")


def test_every_change_is_announced_to_the_workers(api: Api) -> None:
    heard = threading.Event()
    exchange = Topology.from_settings(Settings(**_settings_of(api))).subscription_changes_exchange
    listener = changes.Listener(api.env["HOOKLINE_AMQP_URL"], exchange, heard.set)
    listener.start()
    try:
        assert listener.wait_listening(10)
        heard.clear()  # a reconnecting listener reloads once; only an announcement counts from here
        create(api)
        assert heard.wait(10)
    finally:
        listener.stop()


def _settings_of(api: Api) -> dict[str, str]:
    return {"exchange": api.env["HOOKLINE_EXCHANGE"], "queue_prefix": api.env["HOOKLINE_QUEUE_PREFIX"]}
