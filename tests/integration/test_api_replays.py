"""Replays over HTTP on a real ``hookline api``, the real broker and both databases.

The log is seeded through ``LogStore.write`` in the API's database; what a
replay sends is read back from the retries queue (no worker runs), and what it
tells the log from the log queue.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import dramatiq
import pytest
from support.api import Api, isolated_env, running_api
from support.logrecords import attempt, event
from support.processes import wait_until

from workers.broker.nodes import Nodes
from workers.deliverylog import records
from workers.deliverylog.records import DeliveryState, Record, delivery_id
from workers.deliverylog.store import LogStore
from workers.subscriptions import db

pytestmark = pytest.mark.integration

HOUR = 3600.0
DEAD, RETRYING, DELIVERED = DeliveryState.DEAD_LETTERED, DeliveryState.RETRYING, DeliveryState.DELIVERED


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    with isolated_env(directory, request.param) as env, running_api(env, directory / "api.log") as server:
        yield server


@pytest.fixture
def subscription(api: Api) -> str:
    """A subscription of its own for each test, and queues emptied of what earlier tests left."""
    take(api, "retries")
    take(api, "log")
    body = {"url": "https://example.com/hooks", "event_patterns": ["#"]}
    return str(api.call("POST", "/v1/subscriptions", json=body).json()["id"])


def write(api: Api, *written: Record) -> None:
    engine = db.create_engine(api.env["HOOKLINE_DATABASE_URL"])
    try:
        LogStore(engine).write(list(written))
    finally:
        engine.dispose()


def seed(api: Api, subscription_id: str) -> list[str]:
    """Three events of the last hour for the subscription (dead, retrying, delivered); their ids."""
    now, tag = time.time(), subscription_id[-6:]
    ids = [f"evt_{tag}_dead", f"evt_{tag}_retrying", f"evt_{tag}_delivered"]
    write(
        api,
        event(ids[0], at=now - 50 * 60),
        attempt(ids[0], subscription_id, 8, at=now - 50 * 60, state=DEAD, status=503),
        event(ids[1], at=now - 40 * 60),
        attempt(ids[1], subscription_id, 1, at=now - 40 * 60, state=RETRYING, status=500),
        event(ids[2], at=now - 30 * 60),
        attempt(ids[2], subscription_id, 1, at=now - 30 * 60, state=DELIVERED),
    )
    return ids


def take(api: Api, role: str) -> list[bytes]:
    """The bodies in the queue of ``role`` (``retries``, ``log``), taken out of it."""
    queue = f"{api.env['HOOKLINE_QUEUE_PREFIX']}.{role}"
    bodies: list[bytes] = []
    connection = Nodes(api.env["HOOKLINE_AMQP_URL"]).connect()
    try:
        channel = connection.channel()
        while True:
            method, _properties, body = channel.basic_get(queue, auto_ack=True)
            if method is None or body is None:
                return bodies
            bodies.append(body)
    finally:
        connection.close()


def retries(api: Api) -> list[dict[str, Any]]:
    """The deliveries in the retries queue, out of their batches, taken out of it."""
    messages = [dramatiq.Message.decode(body) for body in take(api, "retries")]
    return [delivery for message in messages for delivery in message.kwargs["deliveries"]]


def an_hour_ago() -> str:
    return datetime.fromtimestamp(time.time() - HOUR, UTC).isoformat()


def finished(api: Api, job_id: str) -> dict[str, Any]:
    """The job once it succeeded or failed."""
    found: dict[str, Any] = {}

    def done() -> bool:
        found.update(api.call("GET", f"/v1/replays/{job_id}", key=api.read_only_key).json())
        return found["state"] in ("succeeded", "failed")

    wait_until(done, timeout=30, what=f"replay job {job_id} finished", log=api.log)
    return found


def test_a_replay_job_polled_to_completion_puts_the_failed_deliveries_on_the_retries_queue(
    api: Api, subscription: str
) -> None:
    dead, retrying, _delivered = seed(api, subscription)

    response = api.call("POST", "/v1/replays", json={"subscription_id": subscription, "since": an_hour_ago()})

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/replays/{job['id']}"
    assert (job["state"], job["done"], job["request"]["state"]) == ("queued", 0, "failed")
    done = finished(api, job["id"])
    assert (done["state"], done["total"], done["done"], done["error"]) == ("succeeded", 2, 2, None)
    assert [each["event_id"] for each in done["result"]["replayed"]] == [dead, retrying]
    sent = retries(api)
    assert [(each["event_id"], each["subscription_id"], each["attempt"]) for each in sent] == [
        (dead, subscription, 1),
        (retrying, subscription, 1),
    ]
    assert [each["run"] for each in sent] == [each["run"] for each in done["result"]["replayed"]]


def test_a_replay_job_tells_the_log_of_each_delivery_it_sent(api: Api, subscription: str) -> None:
    dead, retrying, _delivered = seed(api, subscription)

    job = api.call(
        "POST", "/v1/replays", json={"subscription_id": subscription, "since": an_hour_ago()}
    ).json()
    finished(api, job["id"])

    told = [record for body in take(api, "log") for record in records.decode(body)]
    assert [(each.event_id, each.state, each.reason) for each in told] == [  # type: ignore[union-attr]
        (dead, DeliveryState.PENDING, "replayed"),
        (retrying, DeliveryState.PENDING, "replayed"),
    ]


def test_a_dry_run_job_lists_what_it_would_send_and_sends_nothing(api: Api, subscription: str) -> None:
    dead, retrying, delivered = seed(api, subscription)
    body = {"subscription_id": subscription, "since": an_hour_ago(), "state": "all", "dry_run": True}

    job = api.call("POST", "/v1/replays", json=body).json()
    done = finished(api, job["id"])

    assert (done["state"], done["total"], done["done"]) == ("succeeded", 3, 0)
    assert [each["event_id"] for each in done["result"]["to_send"]] == [dead, retrying, delivered]
    assert retries(api) == []


def test_a_replay_sent_again_with_its_idempotency_key_starts_one_job(api: Api, subscription: str) -> None:
    seed(api, subscription)
    body = {"subscription_id": subscription, "since": an_hour_ago()}
    headers = {"Idempotency-Key": f"replay-{subscription}"}

    first = api.call("POST", "/v1/replays", json=body, headers=headers)
    again = api.call("POST", "/v1/replays", json=body, headers=headers)

    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    finished(api, first.json()["id"])
    assert len(retries(api)) == 2


def test_a_replay_of_a_disabled_subscription_is_refused_before_a_job_starts(
    api: Api, subscription: str
) -> None:
    api.call("POST", f"/v1/subscriptions/{subscription}/pause")

    response = api.call("POST", "/v1/replays", json={"subscription_id": subscription, "since": an_hour_ago()})

    assert response.status_code == 409
    assert response.json()["type"] == "urn:hookline:problem:replay-refused"
    assert "disabled" in response.json()["detail"]


def test_a_replay_of_an_unknown_subscription_is_a_404(api: Api) -> None:
    response = api.call(
        "POST", "/v1/replays", json={"subscription_id": "sub_nowhere", "since": an_hour_ago()}
    )

    assert response.status_code == 404
    assert response.json()["type"] == "urn:hookline:problem:subscription-not-found"


def test_an_empty_range_is_refused_naming_until(api: Api, subscription: str) -> None:
    body = {"subscription_id": subscription, "since": "2026-03-10T12:00:00Z", "until": "2026-03-10T11:00:00Z"}

    problem = api.call("POST", "/v1/replays", json=body).json()

    assert problem["status"] == 422
    assert [error["pointer"] for error in problem["errors"]] == ["#/until"]


def test_a_read_only_key_may_poll_a_job_but_not_start_one(api: Api, subscription: str) -> None:
    body = {"subscription_id": subscription, "since": an_hour_ago(), "dry_run": True}

    refused = api.call("POST", "/v1/replays", json=body, key=api.read_only_key)

    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:hookline:problem:read-only-key"
    job = api.call("POST", "/v1/replays", json=body).json()
    assert finished(api, job["id"])["state"] == "succeeded"


def test_an_unknown_job_is_a_404_that_says_where_jobs_are_kept(api: Api) -> None:
    response = api.call("GET", "/v1/replays/rj_nowhere")

    assert response.status_code == 404
    assert response.json()["type"] == "urn:hookline:problem:replay-job-not-found"
    assert "memory of the process" in response.json()["detail"]


def test_one_delivery_is_replayed_at_once_in_a_run_of_its_own(api: Api, subscription: str) -> None:
    dead, _retrying, _delivered = seed(api, subscription)

    response = api.call("POST", f"/v1/deliveries/{delivery_id(dead, subscription)}/replay")

    assert response.status_code == 202
    (replayed,) = response.json()["replayed"]
    assert replayed["event_id"] == dead
    assert (
        response.headers["location"] == f"/v1/deliveries/{delivery_id(dead, subscription, replayed['run'])}"
    )
    assert [(each["event_id"], each["run"]) for each in retries(api)] == [(dead, replayed["run"])]


def test_a_delivery_whose_payload_the_log_lost_is_refused(api: Api, subscription: str) -> None:
    write(api, attempt("evt_without_record", subscription, 1, at=time.time() - 60, state=DEAD, status=503))

    response = api.call("POST", f"/v1/deliveries/{delivery_id('evt_without_record', subscription)}/replay")

    assert response.status_code == 409
    assert "no longer keeps the payload" in response.json()["detail"]
    assert retries(api) == []


def test_replaying_an_unknown_delivery_is_a_404_and_needs_a_full_key(api: Api) -> None:
    missing = api.call("POST", "/v1/deliveries/dlv_nowhere/replay")
    read_only = api.call("POST", "/v1/deliveries/dlv_nowhere/replay", key=api.read_only_key)

    assert (missing.status_code, read_only.status_code) == (404, 403)
    assert missing.json()["type"] == "urn:hookline:problem:delivery-not-found"
