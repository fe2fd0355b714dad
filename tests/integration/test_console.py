"""The web console, served by a real `hookline api`: sign-in, its cookie, CSRF, read-only keys, escaping.

Driven with httpx as a browser without JavaScript would drive it: forms posted
url-encoded, the session cookie sent back. The browser tests (tests/browser)
drive the same pages in Chromium.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
from support.api import Api, isolated_env, running_api
from support.console_http import FORM_TOKEN, csrf_of, sign_in, signed_in
from support.logrecords import attempt, body
from support.logrecords import event as event_record
from support.processes import wait_until
from support.receiver import receiver

from workers.broker.topology import Topology
from workers.console.session import Sessions
from workers.deliverylog.records import DeliveryState, Record
from workers.deliverylog.store import LogStore
from workers.pipeline.deadletters import PARKED_AT_HEADER, REASON_HEADER
from workers.settings import Settings
from workers.subscriptions import db

pytestmark = pytest.mark.integration

MARKUP = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("console")
    with isolated_env(directory, "sqlite") as env, running_api(env, directory / "api.log") as server:
        yield server


def test_a_page_without_a_session_sends_to_sign_in(api: Api) -> None:
    answer = httpx.get(api.base + "/console/subscriptions")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/sign-in"


def test_an_unknown_key_does_not_sign_in(api: Api) -> None:
    answer = sign_in(httpx.Client(base_url=api.base), "hk_" + "A" * 43)
    assert answer.status_code == 401
    assert "hookline_console=" not in answer.headers["set-cookie"]
    assert "unknown or revoked" in answer.text


def test_a_sign_in_posted_without_the_forms_token_is_refused(api: Api) -> None:
    answer = httpx.post(api.base + "/console/sign-in", data={"key": api.key})
    assert answer.status_code == 403
    assert "hookline_console=" not in answer.headers["set-cookie"]
    assert "came from another site" in answer.text


def test_signing_in_sets_an_httponly_strict_cookie_that_holds_no_key(api: Api) -> None:
    answer = sign_in(httpx.Client(base_url=api.base), api.key)
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    assert api.key not in cookie
    assert api.key[3:20] not in cookie


def test_the_cookie_is_secure_unless_the_console_is_on_loopback(api: Api) -> None:
    on_loopback = sign_in(httpx.Client(base_url=api.base), api.key)
    assert "Secure" not in on_loopback.headers["set-cookie"]
    by_name = httpx.Client(base_url=api.base)
    form = by_name.get("/console/sign-in", headers={"Host": "console.example.com"})
    assert "Secure" in form.headers["set-cookie"]
    token = FORM_TOKEN.search(form.text).group(1)  # type: ignore[union-attr]
    # httpx keeps a Secure cookie from an http:// answer off later requests, as a browser does: sent by hand
    signed = httpx.post(
        api.base + "/console/sign-in",
        data={"key": api.key, "form_token": token},
        headers={"Host": "console.example.com"},
        cookies={"hookline_console_sign_in": token},
    )
    assert signed.status_code == 303
    assert "Secure" in signed.headers["set-cookie"]


def test_a_forged_cookie_is_no_session(api: Api) -> None:
    answer = httpx.get(api.base + "/console/", cookies={"hookline_console": "gAAAAAforged"})
    assert answer.status_code == 303


def test_the_overview_shows_queues_and_subscriptions_by_state(api: Api) -> None:
    page = signed_in(api, api.key).get("/console/")
    assert page.status_code == 200
    assert "Queues" in page.text
    assert "Subscriptions by state" in page.text
    assert "UTC" in page.text


def test_creating_a_subscription_shows_its_secret_once(api: Api) -> None:
    browser = signed_in(api, api.key)
    form = browser.get("/console/subscriptions")
    created = browser.post(
        "/console/subscriptions/new",
        data={"csrf": csrf_of(form), "url": "https://example.com/hook", "event_patterns": "order.*"},
    )
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", created.text)
    assert secret is not None
    subscription_id = re.search(r"sub_[A-Za-z0-9]+", created.text).group(0)  # type: ignore[union-attr]
    shown = browser.get(f"/console/subscriptions/{subscription_id}")
    assert shown.status_code == 200
    assert "https://example.com/hook" in shown.text
    assert secret.group(0) not in shown.text
    assert "whsec_" not in browser.get("/console/subscriptions").text


def test_a_change_without_the_csrf_token_is_refused(api: Api) -> None:
    browser = signed_in(api, api.key)
    answer = browser.post(
        "/console/subscriptions/new", data={"url": "https://example.com/x", "event_patterns": "a.b"}
    )
    assert answer.status_code == 403
    wrong = browser.post("/console/subscriptions/new", data={"csrf": "nope", "url": "https://e.com/x"})
    assert wrong.status_code == 403


def test_a_read_only_key_sees_no_change_buttons_and_is_refused_changes(api: Api) -> None:
    browser = signed_in(api, api.read_only_key)
    listing = browser.get("/console/subscriptions")
    assert "read-only" in listing.text
    assert "New subscription" not in listing.text
    refused = browser.post(
        "/console/subscriptions/new",
        data={"csrf": csrf_of(listing), "url": "https://example.com/ro", "event_patterns": "a.b"},
    )
    assert refused.status_code == 403
    assert "read-only" in refused.text
    assert "https://example.com/ro" not in browser.get("/console/subscriptions").text


def test_a_subscription_is_paused_and_resumed(api: Api) -> None:
    made = api.call(
        "POST", "/v1/subscriptions", json={"url": "https://example.com/p", "event_patterns": ["p.q"]}
    )
    subscription_id = made.json()["id"]
    browser = signed_in(api, api.key)
    page = browser.get(f"/console/subscriptions/{subscription_id}")
    paused = browser.post(f"/console/subscriptions/{subscription_id}/pause", data={"csrf": csrf_of(page)})
    assert paused.status_code == 303
    assert api.call("GET", f"/v1/subscriptions/{subscription_id}").json()["enabled"] is False
    browser.post(f"/console/subscriptions/{subscription_id}/resume", data={"csrf": csrf_of(page)})
    assert api.call("GET", f"/v1/subscriptions/{subscription_id}").json()["enabled"] is True


def test_markup_in_a_description_renders_as_text(api: Api) -> None:
    made = api.call(
        "POST",
        "/v1/subscriptions",
        json={
            "url": "https://example.com/e",
            "event_patterns": ["e.f"],
            "description": "<script>x()</script>",
        },
    )
    page = signed_in(api, api.read_only_key).get(f"/console/subscriptions/{made.json()['id']}")
    assert "<script>x()</script>" not in page.text
    assert "&lt;script&gt;x()&lt;/script&gt;" in page.text


def test_an_unknown_subscription_is_a_404_page(api: Api) -> None:
    page = signed_in(api, api.key).get("/console/subscriptions/sub_nothere")
    assert page.status_code == 404
    assert "No such subscription" in page.text


def test_signing_out_ends_the_session(api: Api) -> None:
    browser = signed_in(api, api.key)
    page = browser.get("/console/")
    out = browser.post("/console/sign-out", data={"csrf": csrf_of(page)})
    assert out.status_code == 303
    assert browser.get("/console/").status_code == 303


def logged(api: Api, event_id: str, event_type: str) -> None:
    """An event whose payload and answer hold markup, with one failed attempt, in the API's delivery log."""
    now = time.time()
    hostile = replace(
        event_record(event_id, at=now, event_type=event_type), payload=body(event_type, note=MARKUP)
    )
    failed = attempt(
        event_id,
        "sub_x",
        1,
        at=now,
        state=DeliveryState.RETRYING,
        status=500,
        event_type=event_type,
        response=MARKUP,
    )
    write_log(api, [hostile, failed])


def write_log(api: Api, records: list[Record]) -> None:
    engine = db.create_engine(api.env["HOOKLINE_DATABASE_URL"])
    try:
        LogStore(engine).write(records)
    finally:
        engine.dispose()


def test_markup_in_an_event_type_payload_or_answer_renders_as_text(api: Api) -> None:
    logged(api, "evt_markup", MARKUP)
    browser = signed_in(api, api.read_only_key)
    for path in ("/console/events/evt_markup", "/console/deliveries?subscription_id=sub_x"):
        page = browser.get(path)
        assert page.status_code == 200, path
        assert MARKUP not in page.text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path


def test_an_event_page_shows_each_attempt_with_its_status_and_answer(api: Api) -> None:
    logged(api, "evt_timeline", "order.created")
    page = signed_in(api, api.key).get("/console/events/evt_timeline")
    assert "sub_x" in page.text
    assert ">500<" in page.text
    assert "#1" in page.text
    assert "Replay this delivery" in page.text
    read_only = signed_in(api, api.read_only_key).get("/console/events/evt_timeline")
    assert "Replay this delivery" not in read_only.text


def subscription_via_api(api: Api, url: str = "https://example.com/hook", **fields: object) -> dict[str, Any]:
    made = api.call("POST", "/v1/subscriptions", json={"url": url, "event_patterns": ["order.*"], **fields})
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_rotating_a_secret_shows_the_new_one_once(api: Api) -> None:
    made = subscription_via_api(api)
    browser = signed_in(api, api.key)
    page = browser.get(f"/console/subscriptions/{made['id']}")
    rotated = browser.post(f"/console/subscriptions/{made['id']}/rotate-secret", data={"csrf": csrf_of(page)})
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    new_secret = re.search(r"whsec_[A-Za-z0-9+/=]+", rotated.text)
    assert new_secret is not None
    assert new_secret.group(0) != made["secret"]
    after = browser.get(f"/console/subscriptions/{made['id']}").text
    assert new_secret.group(0) not in after
    assert made["secret"] not in after
    assert "the old secret signs until" in after


def test_editing_a_subscription_changes_its_url_patterns_and_description(api: Api) -> None:
    made = subscription_via_api(api)
    browser = signed_in(api, api.key)
    page = browser.get(f"/console/subscriptions/{made['id']}")
    form = {
        "csrf": csrf_of(page),
        "url": "https://example.com/v2",
        "event_patterns": "a.b, c.*",
        "description": "v2",
    }
    edited = browser.post(f"/console/subscriptions/{made['id']}/edit", data=form)
    assert edited.status_code == 303
    now = api.call("GET", f"/v1/subscriptions/{made['id']}").json()
    assert (now["url"], now["event_patterns"], now["description"]) == (
        "https://example.com/v2",
        ["a.b", "c.*"],
        "v2",
    )


def test_an_invalid_edit_is_refused_with_the_reason_and_changes_nothing(api: Api) -> None:
    made = subscription_via_api(api)
    browser = signed_in(api, api.key)
    page = browser.get(f"/console/subscriptions/{made['id']}")
    form = {"csrf": csrf_of(page), "url": "ftp://example.com/x", "event_patterns": "a.b", "description": ""}
    refused = browser.post(f"/console/subscriptions/{made['id']}/edit", data=form)
    assert refused.status_code == 422
    assert api.call("GET", f"/v1/subscriptions/{made['id']}").json()["url"] == made["url"]


def test_the_subscription_list_searches_by_text_and_pages_fifty_at_a_time(api: Api) -> None:
    tag = f"search-{uuid.uuid4().hex[:8]}"
    made = [subscription_via_api(api, description=f"{tag} {number}") for number in range(51)]
    browser = signed_in(api, api.read_only_key)
    first = browser.get("/console/subscriptions", params={"q": tag})
    assert first.text.count(f"<small>{tag}") == 50
    after = re.search(r'after=(sub_[A-Za-z0-9]+)"', first.text)
    assert after is not None
    second = browser.get("/console/subscriptions", params={"q": tag, "after": after.group(1)})
    assert second.text.count(f"<small>{tag}") == 1
    assert made[-1]["id"] in second.text
    assert made[0]["id"] not in second.text


def test_a_test_event_shows_what_the_endpoint_answered(api: Api) -> None:
    with receiver() as hooks:
        made = subscription_via_api(api, url=hooks.url + "/probe")
        browser = signed_in(api, api.key)
        page = browser.get(f"/console/subscriptions/{made['id']}")
        tested = browser.post(f"/console/subscriptions/{made['id']}/test", data={"csrf": csrf_of(page)})
        assert tested.status_code == 200
        assert "The endpoint answered" in tested.text
        assert len(hooks.on("/probe")) == 1


def test_a_range_replay_says_how_many_it_sends_before_it_runs_as_a_job(api: Api) -> None:
    made = subscription_via_api(api)
    now = time.time()
    records = [event_record(f"evt_range_{n}", at=now - 60) for n in range(2)] + [
        attempt(f"evt_range_{n}", made["id"], 1, at=now - 60, state=DeliveryState.DEAD_LETTERED, status=500)
        for n in range(2)
    ]
    write_log(api, records)
    browser = signed_in(api, api.key)
    since = datetime.fromtimestamp(now - 3600, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    asked = {"subscription_id": made["id"], "since": since, "state": "dead"}
    confirm = browser.get("/console/replays/new", params=asked)
    assert confirm.status_code == 200
    assert "2 deliveries will be sent again" in confirm.text
    started = browser.post("/console/replays", data={**asked, "until": "", "csrf": csrf_of(confirm)})
    assert started.status_code == 303
    job = started.headers["location"]
    assert job.startswith("/console/replays/rj_")
    wait_until(lambda: "succeeded" in browser.get(job).text, timeout=30, what="the replay job finished")
    assert "sent 2 of 2" in browser.get(job).text


def test_invalid_events_are_listed_inspected_and_purged(api: Api) -> None:
    queue = Topology(
        exchange=api.env["HOOKLINE_EXCHANGE"], prefix=api.env["HOOKLINE_QUEUE_PREFIX"]
    ).invalid_events_queue
    headers = {REASON_HEADER: "not JSON", PARKED_AT_HEADER: datetime.now(UTC).isoformat()}
    with pika.BlockingConnection(pika.URLParameters(api.env["HOOKLINE_AMQP_URL"])) as connection:
        channel = connection.channel()
        channel.confirm_delivery()
        properties = pika.BasicProperties(message_id="evt_unreadable", headers=headers)
        channel.basic_publish("", queue, MARKUP.encode(), properties, mandatory=True)
    browser = signed_in(api, api.key)
    listing = browser.get("/console/invalid-events")
    assert "evt_unreadable" in listing.text
    assert "not JSON" in listing.text
    shown = browser.get("/console/invalid-events/evt_unreadable")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown.text
    assert MARKUP not in shown.text
    purged = browser.post("/console/invalid-events/evt_unreadable/purge", data={"csrf": csrf_of(shown)})
    assert purged.status_code == 303
    assert "evt_unreadable" not in browser.get("/console/invalid-events").text


def delivered_of_total(page: httpx.Response) -> tuple[int, int]:
    found = re.search(r"\((\d+) of (\d+)\)", page.text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def test_the_overview_counts_what_became_of_the_last_hours_deliveries(api: Api) -> None:
    browser = signed_in(api, api.read_only_key)
    before = delivered_of_total(browser.get("/console/"))
    now = time.time()
    outcomes = [DeliveryState.DELIVERED, DeliveryState.DELIVERED, DeliveryState.DEAD_LETTERED]
    hour_ago = [
        event_record("evt_long_ago", at=now - 7200),
        attempt("evt_long_ago", "sub_h", 1, at=now - 7200, state=DeliveryState.DELIVERED),
    ]
    records = [event_record(f"evt_hour_{n}", at=now - 60) for n in range(3)] + [
        attempt(f"evt_hour_{n}", "sub_h", 1, at=now - 60, state=outcome) for n, outcome in enumerate(outcomes)
    ]
    write_log(api, hour_ago + records)
    page = browser.get("/console/")
    assert delivered_of_total(page) == (before[0] + 2, before[1] + 3)
    assert " a minute" in page.text


def test_the_overview_names_the_subscriptions_an_open_breaker_refused_in_the_last_minutes(api: Api) -> None:
    refused = subscription_via_api(api, url="https://refused.example.com/hook")
    earlier = subscription_via_api(api, url="https://earlier.example.com/hook")
    now = time.time()
    write_log(
        api,
        [
            event_record("evt_breaker_now", at=now - 120),
            attempt(
                "evt_breaker_now",
                refused["id"],
                3,
                at=now - 30,
                state=DeliveryState.RETRYING,
                reason="circuit_open",
            ),
            event_record("evt_breaker_then", at=now - 3600),
            attempt(
                "evt_breaker_then",
                earlier["id"],
                2,
                at=now - 3600,
                state=DeliveryState.RETRYING,
                reason="circuit_open",
            ),
        ],
    )

    section = card(signed_in(api, api.read_only_key).get("/console/"), "breakers")

    assert refused["id"] in section
    assert "https://refused.example.com/hook" in section
    assert earlier["id"] not in section


def test_the_overview_shows_when_the_recorders_last_wrote_and_how_far_behind_they_were(api: Api) -> None:
    now = time.time()
    write_log(api, [event_record("evt_lag", at=now - 12)])

    shown = re.sub(r"<[^>]+>", "", card(signed_in(api, api.read_only_key).get("/console/"), "recorder-lag"))

    behind = re.search(r"([\d.]+) s behind then", shown)
    assert behind is not None, shown
    assert 12 <= float(behind.group(1)) < 12 + 60
    assert "just now" in shown or "s ago" in shown


def card(page: httpx.Response, element_id: str) -> str:
    """The markup of the element with that id, up to its closing tag."""
    assert page.status_code == 200, page.text
    start = page.text.index(f'id="{element_id}"')
    tag = page.text.rfind("<", 0, start)
    name = page.text[tag + 1 : start].split()[0]
    return page.text[start : page.text.index(f"</{name}>", start)]


def test_a_deleted_subscription_is_gone(api: Api) -> None:
    made = subscription_via_api(api)
    browser = signed_in(api, api.key)
    page = browser.get(f"/console/subscriptions/{made['id']}")
    deleted = browser.post(f"/console/subscriptions/{made['id']}/delete", data={"csrf": csrf_of(page)})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/console/subscriptions"
    assert api.call("GET", f"/v1/subscriptions/{made['id']}").status_code == 404


def test_a_database_that_cannot_check_the_key_is_an_error_page_not_a_sign_in(tmp_path: Path) -> None:
    with (
        isolated_env(tmp_path, "sqlite") as env,
        running_api(env, tmp_path / "api.log", setup="none") as bare,
    ):
        settings = Settings(secrets_key=env["HOOKLINE_SECRETS_KEY"])  # type: ignore[arg-type] # parsed from str
        cookie = Sessions(settings).seal("hk_" + "A" * 43)
        page = httpx.get(bare.base + "/console/", cookies={"hookline_console": cookie})
    assert page.status_code == 503
    assert "text/html" in page.headers["content-type"]
    assert "The database failed" in page.text


def test_a_search_by_subscription_and_time_offers_to_replay_that_range_and_a_read_only_key_does_not(
    api: Api,
) -> None:
    asked = {"subscription_id": "sub_x", "since": "2026-01-01T00:00:00"}
    offered = signed_in(api, api.key).get("/console/deliveries", params=asked)
    assert "/console/replays/new?subscription_id=sub_x&amp;since=2026-01-01T00%3A00%3A00" in offered.text
    assert (
        "/console/replays/new"
        not in signed_in(api, api.read_only_key).get("/console/deliveries", params=asked).text
    )
