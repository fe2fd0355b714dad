"""The console's parking-queue pages a page at a time, crashed messages, and subscription forms that fail.

A real `hookline api` on the real broker and database, driven with httpx as a
browser without JavaScript drives it. Messages are parked by publishing them
where hookline parks them (a crashed one by rejecting it, as a worker's nack
does); what a page claims is checked against the queues themselves.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pika
import pytest
from pika.adapters.blocking_connection import BlockingChannel
from support.api import Api, isolated_env, running_api
from support.console_http import csrf_of, signed_in
from support.deadletters import dead_letter

from workers.broker.nodes import Nodes
from workers.broker.topology import Topology
from workers.pipeline.deadletters import (
    ORIGIN_QUEUE_HEADER,
    PARKED_AT_HEADER,
    REASON_HEADER,
    ROUTING_KEY_HEADER,
)

pytestmark = pytest.mark.integration

MARKUP = "<script>alert(1)</script>"
DASH = "\u2013"  # the en dash between the first and the last number a page shows
LISTS = ("/v1/dead-letters", "/v1/invalid-events", "/v1/crashed-messages")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("console-pages")
    with isolated_env(directory, "sqlite") as env, running_api(env, directory / "api.log") as server:
        yield server


@pytest.fixture
def topology(api: Api) -> Topology:
    """The server's queues, emptied of what an earlier test parked."""
    found = Topology(exchange=api.env["HOOKLINE_EXCHANGE"], prefix=api.env["HOOKLINE_QUEUE_PREFIX"])
    crashed = [found.crashed_queue(queue) for queue in found.actor_queues]
    with channel_of(api) as channel:
        for queue in (found.dead_letters_queue, found.invalid_events_queue, *found.actor_queues, *crashed):
            channel.queue_purge(queue)
    return found


@contextmanager
def channel_of(api: Api) -> Iterator[BlockingChannel]:
    connection = Nodes(api.env["HOOKLINE_AMQP_URL"]).connect()
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        yield channel
    finally:
        connection.close()


def park_dead_letters(api: Api, topology: Topology, subscription_ids: list[str]) -> list[str]:
    """One dead letter for each of ``subscription_ids``, in order; their ids."""
    letters = [dead_letter(each) for each in subscription_ids]
    with channel_of(api) as channel:
        for letter in letters:
            properties = pika.BasicProperties(**vars(letter.properties(None)))
            body = letter.to_json()
            channel.basic_publish("", topology.dead_letters_queue, body, properties, mandatory=True)
    return [letter.id for letter in letters]


def park_invalid(api: Api, topology: Topology, count: int) -> list[str]:
    """``count`` events parked as invalid, as the events queue's validator parks them, a millisecond apart."""
    ids = [f"evt_bad_{number:03d}_{uuid.uuid4().hex[:6]}" for number in range(count)]
    return park(api, topology.invalid_events_queue, ids, {ROUTING_KEY_HEADER: "order.created"})


def park_crashed(api: Api, topology: Topology, count: int) -> list[str]:
    """``count`` messages of the retries queue as fail_on_error parks what raised, a millisecond apart."""
    ids = [f"m_raised_{number:03d}_{uuid.uuid4().hex[:6]}" for number in range(count)]
    queue = topology.retries_queue
    return park(api, topology.crashed_queue(queue), ids, {ORIGIN_QUEUE_HEADER: queue})


def park(api: Api, queue: str, ids: list[str], headers: dict[str, str]) -> list[str]:
    start = datetime.now(UTC)
    with channel_of(api) as channel:
        for number, each in enumerate(ids):
            at = (start + timedelta(milliseconds=number)).isoformat()
            parked = {**headers, REASON_HEADER: "not JSON", PARKED_AT_HEADER: at}
            properties = pika.BasicProperties(message_id=each, headers=parked)
            channel.basic_publish("", queue, b"{}", properties, mandatory=True)
    return ids


def crash(api: Api, topology: Topology, count: int, body: bytes = b"{}") -> list[str]:
    """``count`` messages of the retries queue rejected by their "worker": RabbitMQ parks them in its .XQ."""
    ids = [f"m_crashed_{number:03d}_{uuid.uuid4().hex[:6]}" for number in range(count)]
    queue = topology.retries_queue
    with channel_of(api) as channel:
        for each in ids:
            channel.basic_publish("", queue, body, pika.BasicProperties(message_id=each), mandatory=True)
        for _ in ids:
            method, _properties, _body = channel.basic_get(queue)
            assert method is not None
            assert method.delivery_tag is not None
            channel.basic_reject(method.delivery_tag, requeue=False)
    return ids


def ids_in(api: Api, queue: str) -> list[str]:
    """The message ids ``queue`` holds, in order, all left in place."""
    found: list[str] = []
    with channel_of(api) as channel:
        while True:
            method, properties, _body = channel.basic_get(queue)
            if method is None or properties is None:
                return found
            found.append(str(properties.message_id))


def listed(page: httpx.Response, path: str) -> list[str]:
    """The ids a list page links to, in the order it shows them."""
    return re.findall(rf'<td><a href="/console{path}/([^"/]+)">', page.text)


def link(page: httpx.Response, rel: str) -> str | None:
    found = re.search(rf'<a rel="{rel}" href="([^"]+)"', page.text)
    return found.group(1).replace("&amp;", "&") if found else None


def subscription_via_api(api: Api, url: str = "https://example.com/hook") -> dict[str, Any]:
    made = api.call("POST", "/v1/subscriptions", json={"url": url, "event_patterns": ["order.*"]})
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_the_dead_letters_page_pages_fifty_at_a_time(api: Api, topology: Topology) -> None:
    parked = park_dead_letters(api, topology, ["sub_pages"] * 120)
    browser = signed_in(api, api.read_only_key)

    first = browser.get("/console/dead-letters")
    second = browser.get(link(first, "next") or "")
    third = browser.get(link(second, "next") or "")

    assert listed(first, "/dead-letters") == parked[:50]
    assert f"dead letters 1{DASH}50 of 120" in first.text
    assert link(first, "prev") is None
    assert link(first, "next") == "/console/dead-letters?offset=50"
    assert listed(second, "/dead-letters") == parked[50:100]
    assert f"dead letters 51{DASH}100 of 120" in second.text
    assert link(second, "prev") == "/console/dead-letters"
    assert listed(third, "/dead-letters") == parked[100:]
    assert f"dead letters 101{DASH}120 of 120" in third.text
    assert link(third, "next") is None
    assert link(third, "prev") == "/console/dead-letters?offset=50"
    assert sorted(ids_in(api, topology.dead_letters_queue)) == sorted(parked)  # all still parked


def test_a_count_past_a_thousand_is_written_with_a_separator(api: Api, topology: Topology) -> None:
    park_dead_letters(api, topology, ["sub_many"] * 1001)

    page = signed_in(api, api.read_only_key).get("/console/dead-letters", params={"offset": 950})

    assert f"dead letters 951{DASH}1,000 of 1,001" in page.text


def test_the_dead_letters_pages_keep_the_subscription_filter(api: Api, topology: Topology) -> None:
    parked = park_dead_letters(api, topology, ["sub_mine", "sub_theirs"] * 60)
    mine = parked[0::2]
    browser = signed_in(api, api.read_only_key)

    first = browser.get("/console/dead-letters", params={"subscription_id": "sub_mine"})
    second = browser.get(link(first, "next") or "")

    assert listed(first, "/dead-letters") == mine[:50]
    assert f"dead letters 1{DASH}50 of this subscription&#39;s (120 in the queue)" in first.text
    assert link(first, "next") == "/console/dead-letters?subscription_id=sub_mine&offset=50"
    assert listed(second, "/dead-letters") == mine[50:]
    assert link(second, "next") is None


def test_an_offset_that_is_no_count_shows_the_first_page(api: Api, topology: Topology) -> None:
    parked = park_dead_letters(api, topology, ["sub_odd"] * 3)
    browser = signed_in(api, api.read_only_key)

    for offset in ("-5", "two", "1e3"):
        page = browser.get("/console/dead-letters", params={"offset": offset})
        assert page.status_code == 200
        assert listed(page, "/dead-letters") == parked


def test_a_page_past_the_end_says_so_and_links_back_to_the_first(api: Api, topology: Topology) -> None:
    park_dead_letters(api, topology, ["sub_end"] * 3)

    page = signed_in(api, api.read_only_key).get("/console/dead-letters", params={"offset": 500})

    assert "No dead letter on this page." in page.text
    assert link(page, "prev") == "/console/dead-letters"
    assert link(page, "next") is None


def test_the_invalid_events_page_pages_fifty_at_a_time(api: Api, topology: Topology) -> None:
    parked = park_invalid(api, topology, 60)
    browser = signed_in(api, api.read_only_key)

    first = browser.get("/console/invalid-events")
    second = browser.get(link(first, "next") or "")

    assert listed(first, "/invalid-events") == parked[:50]
    assert f"messages 1{DASH}50 of 60" in first.text
    assert listed(second, "/invalid-events") == parked[50:]
    assert f"messages 51{DASH}60 of 60" in second.text
    assert link(second, "next") is None


def test_each_api_list_skips_the_first_offset_messages_and_leaves_them_parked(
    api: Api, topology: Topology
) -> None:
    letters = park_dead_letters(api, topology, ["sub_api"] * 5)
    invalid = park_invalid(api, topology, 5)
    crashed = crash(api, topology, 5)

    dead = api.call("GET", "/v1/dead-letters", params={"offset": 2, "limit": 2}, key=api.read_only_key)
    bad = api.call("GET", "/v1/invalid-events", params={"offset": 3}, key=api.read_only_key)
    xq = api.call("GET", "/v1/crashed-messages", params={"offset": 4, "limit": 10}, key=api.read_only_key)

    assert [each["id"] for each in dead.json()["dead_letters"]] == letters[2:4]
    assert dead.json()["total"] == 5
    assert [each["id"] for each in bad.json()["messages"]] == invalid[3:]
    assert [each["id"] for each in xq.json()["messages"]] == crashed[4:]
    assert sorted(ids_in(api, topology.dead_letters_queue)) == sorted(letters)


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("offset", ["-1", "ten"])
def test_an_api_list_refuses_an_offset_that_is_no_count_with_a_422_problem(
    api: Api, path: str, offset: str
) -> None:
    answer = api.call("GET", path, params={"offset": offset})

    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"] == "urn:hookline:problem:validation-error"
    assert [error.get("parameter") for error in problem["errors"]] == ["offset"]


def test_crashed_messages_are_listed_inspected_replayed_and_purged(api: Api, topology: Topology) -> None:
    kept, gone = crash(api, topology, 2, body=MARKUP.encode())
    browser = signed_in(api, api.key)

    listing = browser.get("/console/crashed-messages")
    shown = browser.get(f"/console/crashed-messages/{kept}")
    replayed = browser.post(f"/console/crashed-messages/{kept}/replay", data={"csrf": csrf_of(shown)})
    purged = browser.post(f"/console/crashed-messages/{gone}/purge", data={"csrf": csrf_of(shown)})

    assert listed(listing, "/crashed-messages") == [kept, gone]
    assert "rejected by its worker" in listing.text
    assert topology.retries_queue in listing.text  # where it came from
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert MARKUP not in shown.text
    assert replayed.status_code == purged.status_code == 303
    assert replayed.headers["location"] == "/console/crashed-messages?done=replayed"
    assert ids_in(api, topology.crashed_queue(topology.retries_queue)) == []
    assert ids_in(api, topology.retries_queue) == [kept]
    assert "Purged for good." in browser.get(purged.headers["location"]).text


def test_the_crashed_messages_page_pages_fifty_at_a_time(api: Api, topology: Topology) -> None:
    parked = park_crashed(api, topology, 55)
    browser = signed_in(api, api.read_only_key)

    first = browser.get("/console/crashed-messages")
    second = browser.get(link(first, "next") or "")

    assert listed(first, "/crashed-messages") == parked[:50]
    assert listed(second, "/crashed-messages") == parked[50:]
    assert f"messages 51{DASH}55 of 55" in second.text


def test_every_page_links_to_crashed_messages(api: Api) -> None:
    page = signed_in(api, api.read_only_key).get("/console/")

    assert '<a href="/console/crashed-messages">Crashed messages</a>' in page.text


def test_a_read_only_key_sees_no_buttons_on_crashed_messages_and_is_refused_changes(
    api: Api, topology: Topology
) -> None:
    (parked,) = crash(api, topology, 1)
    browser = signed_in(api, api.read_only_key)

    listing = browser.get("/console/crashed-messages")
    shown = browser.get(f"/console/crashed-messages/{parked}")
    refused = browser.post(f"/console/crashed-messages/{parked}/purge", data={"csrf": csrf_of(listing)})

    assert parked in listing.text
    for page in (listing, shown):
        assert "/purge" not in page.text
        assert "/replay" not in page.text
    assert refused.status_code == 403
    assert "read-only" in refused.text
    assert ids_in(api, topology.crashed_queue(topology.retries_queue)) == [parked]


def test_an_unknown_crashed_message_is_a_404_page(api: Api, topology: Topology) -> None:
    page = signed_in(api, api.read_only_key).get("/console/crashed-messages/m_nowhere")

    assert page.status_code == 404
    assert "m_nowhere" in page.text


def test_a_refused_new_subscription_is_shown_again_as_typed_with_the_reason_and_no_secret(api: Api) -> None:
    browser = signed_in(api, api.key)
    form = {
        "url": "ftp://example.com/typed",
        "event_patterns": "order.* invoice..paid",
        "description": "typed by hand",
        "secret": "whsec_" + "A" * 43,  # not a field of the form: never taken, never shown
    }

    refused = browser.post(
        "/console/subscriptions/new", data={**form, "csrf": csrf_of(browser.get("/console/subscriptions"))}
    )

    assert refused.status_code == 422
    assert "New subscription" in refused.text
    assert 'value="ftp://example.com/typed"' in refused.text
    assert 'value="order.* invoice..paid"' in refused.text
    assert 'value="typed by hand"' in refused.text
    assert re.search(r'id="url-error">URL must start with http:// or https://', refused.text)
    assert re.search(r'id="event_patterns-error">event pattern &#39;invoice..paid&#39;', refused.text)
    assert 'id="description-error"' not in refused.text
    assert "whsec_" not in refused.text
    assert "ftp://example.com/typed" not in browser.get("/console/subscriptions").text


def test_a_refused_edit_is_shown_again_as_typed_with_the_reason_by_its_field(api: Api) -> None:
    made = subscription_via_api(api)
    browser = signed_in(api, api.key)
    page = browser.get(f"/console/subscriptions/{made['id']}")
    form = {
        "url": "https://example.com/new",
        "event_patterns": "a..b",
        "description": "x",
        "csrf": csrf_of(page),
    }

    refused = browser.post(f"/console/subscriptions/{made['id']}/edit", data=form)

    assert refused.status_code == 422
    assert 'value="https://example.com/new"' in refused.text
    assert 'value="a..b"' in refused.text
    assert 'id="event_patterns-error"' in refused.text
    assert 'aria-describedby="event_patterns-error"' in refused.text
    assert 'id="url-error"' not in refused.text
    assert made["secret"] not in refused.text
    assert api.call("GET", f"/v1/subscriptions/{made['id']}").json()["url"] == made["url"]


def test_a_refused_form_shows_markup_it_was_given_as_text(api: Api) -> None:
    browser = signed_in(api, api.key)
    form = {"url": f"https://example.com/{MARKUP}", "event_patterns": MARKUP, "description": MARKUP}

    refused = browser.post(
        "/console/subscriptions/new", data={**form, "csrf": csrf_of(browser.get("/console/subscriptions"))}
    )

    assert refused.status_code == 422
    assert MARKUP not in refused.text
    assert "&lt;script&gt;" in refused.text
