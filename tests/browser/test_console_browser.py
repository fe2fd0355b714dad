"""The console in Chromium: sign in, create a subscription, see a published event's delivery and
attempts, replay a dead letter, and a read-only key's refusals; screenshots for docs/console.md."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect
from support.console import DESKTOP, Deployment, screenshot, sign_in
from support.processes import wait_until

pytestmark = pytest.mark.integration


def publish(deployment: Deployment, event_id: str, event_type: str) -> None:
    sent = {"id": event_id, "type": event_type, "timestamp": "2026-11-28T12:00:00Z", "data": {"order_id": 42}}
    assert deployment.api.call("POST", "/v1/events", json=sent).status_code == 202


def create_subscription(page: Page, deployment: Deployment, path: str, patterns: str) -> str:
    """Through the console's form; the id of the subscription made, read from the page."""
    page.goto(deployment.console("/subscriptions"))
    page.get_by_label("URL").fill(deployment.receiver.url + path)
    page.get_by_label("Event patterns (comma or space separated)").fill(patterns)
    page.get_by_label("Description").fill(f"receiver {path}")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", name="Subscription created")).to_be_visible()
    found = re.search(r"sub_[A-Za-z0-9]+", page.locator("main").inner_text())
    assert found is not None
    return found.group(0)


def until_shown(page: Page, text: str, seconds: float = 30) -> None:
    """Reload until ``text`` is on the page: the recorder writes the log a moment after the worker sent."""
    deadline = time.monotonic() + seconds
    while text not in page.locator("main").inner_text():
        assert time.monotonic() < deadline, f"{text!r} not shown on {page.url} within {seconds} s"
        page.wait_for_timeout(500)
        page.reload()


def test_signing_in_with_a_key_opens_the_overview(page: Page, deployment: Deployment) -> None:
    page.goto(deployment.console("/"))
    expect(page).to_have_url(deployment.console("/sign-in"))
    screenshot(page, "sign-in")
    sign_in(page, deployment, deployment.api.key)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    expect(page.get_by_role("heading", name="Subscriptions by state")).to_be_visible()
    expect(page.locator("#last-hour")).to_contain_text(" a minute")


def test_a_subscription_made_in_the_console_shows_its_secret_once_and_its_deliveries(
    page: Page, deployment: Deployment
) -> None:
    sign_in(page, deployment, deployment.api.key)
    subscription_id = create_subscription(page, deployment, "/orders", "order.*")
    secret = page.locator("#secret").inner_text()
    assert secret.startswith("whsec_")
    screenshot(page, "secret-once")
    publish(deployment, "evt_console_1", "order.created")
    wait_until(lambda: bool(deployment.receiver.on("/orders")), timeout=30, what="the webhook received")
    page.goto(deployment.console(f"/subscriptions/{subscription_id}"))
    assert secret not in page.content()
    screenshot(page, "subscription")
    page.get_by_role("link", name="Its deliveries").click()
    # The event's id, not "delivered": that word is on the page before the row is (the state filter).
    until_shown(page, "evt_console_1")
    until_shown(page, "delivered")
    screenshot(page, "deliveries")
    page.get_by_role("link", name="evt_console_1").click()
    expect(page.get_by_role("heading", name="Event evt_console_1")).to_be_visible()
    timeline = page.locator("ol.timeline").first
    expect(timeline).to_contain_text("#1")
    expect(timeline).to_contain_text("200")
    expect(page.locator("pre.payload")).to_contain_text('"order_id": 42')
    screenshot(page, "event")


def test_a_dead_letter_is_replayed_from_the_console(page: Page, deployment: Deployment) -> None:
    deployment.failing_paths.add("/payments")
    sign_in(page, deployment, deployment.api.key)
    create_subscription(page, deployment, "/payments", "payment.failed")
    publish(deployment, "evt_console_dead", "payment.failed")
    page.goto(deployment.console("/dead-letters"))
    until_shown(page, "evt_console_dead")
    screenshot(page, "dead-letters")
    deployment.failing_paths.discard("/payments")
    before = len(deployment.receiver.on("/payments"))
    row = page.get_by_role("row").filter(has_text="evt_console_dead")
    row.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_contain_text("Replayed")
    wait_until(
        lambda: len(deployment.receiver.on("/payments")) > before, timeout=30, what="the replayed webhook"
    )
    expect(page.get_by_role("row").filter(has_text="evt_console_dead")).to_have_count(0)
    page.goto(deployment.console("/"))
    expect(page.locator("#last-hour")).to_contain_text("delivered")
    screenshot(page, "overview")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "overview-phone")
    page.set_viewport_size(DESKTOP)


def test_a_read_only_key_sees_no_change_buttons_and_a_forged_change_is_refused(
    page: Page, deployment: Deployment
) -> None:
    made = deployment.api.call(
        "POST", "/v1/subscriptions", json={"url": deployment.receiver.url + "/ro", "event_patterns": ["ro.*"]}
    ).json()
    sign_in(page, deployment, deployment.api.read_only_key)
    page.goto(deployment.console(f"/subscriptions/{made['id']}"))
    expect(page.get_by_text("read-only", exact=True)).to_be_visible()
    for name in ("Pause", "Rotate secret", "Delete", "Send a test event", "Save"):
        expect(page.get_by_role("button", name=name)).to_have_count(0)
    screenshot(page, "read-only")
    page.evaluate(
        """(target) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = target;
            const csrf = document.querySelector("input[name=csrf]").cloneNode();
            form.appendChild(csrf);
            document.body.appendChild(form);
            form.submit();
        }""",
        f"/console/subscriptions/{made['id']}/pause",
    )
    expect(page.get_by_role("heading", name="Refused")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("read-only")
    assert deployment.api.call("GET", f"/v1/subscriptions/{made['id']}").json()["enabled"] is True


def test_the_console_is_used_from_the_keyboard(page: Page, deployment: Deployment) -> None:
    page.goto(deployment.console("/sign-in"))
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(deployment.api.key)
    page.keyboard.press("Enter")
    page.wait_for_url(deployment.console("/"))
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    for _ in range(3):  # the brand, Overview, Subscriptions
        page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Subscriptions", exact=True)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Subscriptions", exact=True)).to_be_visible()
