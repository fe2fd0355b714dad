"""``POST /v1/events``, ``/v1/status`` and the probes on a real ``hookline api`` and the real broker."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from support.api import Api, isolated_env, running_api
from support.processes import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    with isolated_env(directory, "sqlite") as env, running_api(env, directory / "api.log") as server:
        yield server


def event(**fields: Any) -> dict[str, Any]:
    return {
        "id": "evt_api_test",
        "type": "order.created",
        "timestamp": "2024-05-01T12:00:00Z",
        "data": {"order_id": 42},
        **fields,
    }


def events_queue(api: Api) -> str:
    return f"{api.env['HOOKLINE_QUEUE_PREFIX']}.events"


def stored_events(api: Api) -> list[dict[str, Any]]:
    """Every event in the events queue, taken off it (no worker runs in these tests)."""
    connection = pika.BlockingConnection(pika.URLParameters(api.env["HOOKLINE_AMQP_URL"]))
    channel = connection.channel()
    found = []
    while True:
        method, properties, body = channel.basic_get(events_queue(api), auto_ack=True)
        if method is None:
            break
        found.append(
            {**json.loads(body), "routing_key": method.routing_key, "message_id": properties.message_id}
        )
    connection.close()
    return found


def test_an_accepted_event_is_in_the_events_queue_as_the_wire_contract_says(api: Api) -> None:
    stored_events(api)
    sent = event(id="evt_accepted")

    response = api.call("POST", "/v1/events", json=sent)

    assert response.status_code == 202
    assert response.json() == {"id": "evt_accepted", "type": "order.created", "timestamp": sent["timestamp"]}
    assert response.headers["location"] == "/v1/events/evt_accepted"  # in the log once recorded
    (stored,) = stored_events(api)
    assert stored == {**sent, "routing_key": "order.created", "message_id": "evt_accepted"}


def test_a_publish_retried_with_its_idempotency_key_is_published_once(api: Api) -> None:
    stored_events(api)
    headers = {"Idempotency-Key": "publish-once"}

    first = api.call("POST", "/v1/events", json=event(id="evt_once"), headers=headers)
    again = api.call("POST", "/v1/events", json=event(id="evt_once"), headers=headers)

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.headers["idempotent-replayed"] == "true"
    assert [each["id"] for each in stored_events(api)] == ["evt_once"]


def test_many_publishes_at_once_are_each_answered_after_their_confirm_and_stored_once(api: Api) -> None:
    stored_events(api)
    clients, each = 32, 40
    ids = [[f"evt_many_{client}_{n}" for n in range(each)] for client in range(clients)]

    def publish_all(event_ids: list[str]) -> list[int]:
        headers = {"Authorization": f"Bearer {api.key}"}
        with httpx.Client(base_url=api.base, headers=headers, timeout=30) as client:
            return [client.post("/v1/events", json=event(id=event_id)).status_code for event_id in event_ids]

    with ThreadPoolExecutor(clients) as pool:
        statuses = [status for answered in pool.map(publish_all, ids) for status in answered]

    assert Counter(statuses) == {202: clients * each}
    stored = Counter(each_event["id"] for each_event in stored_events(api))
    assert stored == Counter(event_id for event_ids in ids for event_id in event_ids)


def test_publishing_answers_other_methods_as_not_allowed(api: Api) -> None:
    response = api.call("GET", "/v1/events")

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["type"] == "urn:hookline:problem:method-not-allowed"


def test_a_malformed_idempotency_key_is_refused_naming_the_header_and_nothing_is_published(api: Api) -> None:
    stored_events(api)

    response = api.call("POST", "/v1/events", json=event(), headers={"Idempotency-Key": "has space"})

    problem = response.json()
    assert response.status_code == 422
    assert problem["type"] == "urn:hookline:problem:validation-error"
    assert [error["header"] for error in problem["errors"]] == ["Idempotency-Key"]
    assert stored_events(api) == []


def test_an_event_that_breaks_the_contract_is_refused_naming_each_field(api: Api) -> None:
    response = api.call("POST", "/v1/events", json=event(id="has space", timestamp="2024-02-30T00:00:00Z"))

    problem = response.json()
    assert response.status_code == 422
    assert problem["type"] == "urn:hookline:problem:invalid-event"
    assert [error["pointer"] for error in problem["errors"]] == ["#/id", "#/timestamp"]
    assert "visible ASCII" in problem["errors"][0]["detail"]


def test_a_missing_and_an_unknown_field_are_named(api: Api) -> None:
    body = {key: value for key, value in event().items() if key != "data"} | {"payload": {}}

    problem = api.call("POST", "/v1/events", json=body).json()

    assert {(error["pointer"], error["detail"]) for error in problem["errors"]} == {
        ("#/data", "missing"),
        ("#/payload", "not a field of an event"),
    }


def test_an_event_over_the_size_limit_is_refused_as_too_large(api: Api) -> None:
    response = api.call("POST", "/v1/events", json=event(data={"blob": "x" * 300_000}))

    assert response.status_code == 413
    assert response.json()["type"] == "urn:hookline:problem:event-too-large"


def test_a_body_over_the_request_limit_is_refused_before_it_is_read(api: Api) -> None:
    response = api.call(
        "POST", "/v1/events", content=b"x" * (2 * 1024 * 1024), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["type"] == "urn:hookline:problem:request-too-large"


def test_a_body_that_is_not_json_is_refused_as_an_unsupported_media_type(api: Api) -> None:
    response = api.call("POST", "/v1/events", content=b"id=1", headers={"Content-Type": "text/plain"})

    assert response.status_code == 415
    assert response.json()["type"] == "urn:hookline:problem:unsupported-media-type"


def test_status_shows_queue_depths_and_subscriptions_by_state(api: Api) -> None:
    stored_events(api)
    api.call("POST", "/v1/events", json=event(id="evt_counted"))
    api.call("POST", "/v1/subscriptions", json={"url": "https://example.com/s", "event_patterns": ["#"]})

    status = api.call("GET", "/v1/status", key=api.read_only_key).json()

    assert status["broker"]["error"] is None
    assert status["broker"]["queues"]["events"] == {"messages": 1, "consumers": 0}
    assert status["subscriptions"]["by_state"]["healthy"] >= 1


def test_the_probes_answer_without_a_key_and_the_api_is_ready(api: Api) -> None:
    assert api.call("GET", "/healthz", key=None).json() == {"status": "ok", "problems": []}
    assert api.call("GET", "/readyz", key=None).status_code == 200


def test_requests_are_counted_by_route_template_and_status_on_the_metrics_port(api: Api) -> None:
    api.call("GET", "/v1/subscriptions/sub_unknown")
    api.call("POST", "/v1/events", json=event(id="evt_counted_in_metrics"))
    api.call("POST", "/v1/events", json=event(), key=api.read_only_key)

    def counted(series: str) -> bool:
        return series in api.call("GET", "/metrics", key=None, base=api.metrics).text

    wait_until(
        lambda: counted('route="/v1/subscriptions/{subscription_id}",status="404"'),
        timeout=10,
        what="the 404 counted",
    )
    assert counted('hookline_api_requests_total{method="POST",route="/v1/events",status="202"}')
    assert counted('hookline_api_requests_total{method="POST",route="/v1/events",status="403"}')
    assert "sub_unknown" not in api.call("GET", "/metrics", key=None, base=api.metrics).text


@pytest.fixture
def api_without_topology(tmp_path: Path) -> Iterator[Api]:
    """An API whose database is migrated but whose exchange was never declared (no `hookline setup`)."""
    with (
        isolated_env(tmp_path, "sqlite") as env,
        running_api(env, tmp_path / "api.log", setup="database") as server,
    ):
        yield server


def test_an_event_the_broker_cannot_take_is_refused_with_why_and_nothing_is_lost_silently(
    api_without_topology: Api,
) -> None:
    response = api_without_topology.call("POST", "/v1/events", json=event())

    problem = response.json()
    assert response.status_code == 503
    assert problem["type"] == "urn:hookline:problem:exchange-not-found"
    assert "hookline setup" in problem["detail"]


def test_the_api_lives_but_is_not_ready_until_its_database_is_migrated(tmp_path: Path) -> None:
    with isolated_env(tmp_path, "sqlite") as env, running_api(env, tmp_path / "api.log", setup="none") as api:
        ready = api.call("GET", "/readyz", key=None)
        live = api.call("GET", "/healthz", key=None)

    assert live.status_code == 200
    assert ready.status_code == 503
    assert "run `hookline setup`" in ready.json()["problems"][0]
