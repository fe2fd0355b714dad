"""Validation of subscription fields, and what a Subscription reveals of its secrets."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from workers.errors import InvalidSubscription
from workers.outbound.signing import generate_secret
from workers.subscriptions.store import (
    MASKED_SECRET,
    Subscription,
    new_subscription_id,
    validate_description,
    validate_patterns,
    validate_secret,
    validate_url,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "http://127.0.0.1:8080/hook?tenant=7",
        "HTTPS://Example.COM",
        "https://[::1]:8443/x",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_validate_url_accepts_http_and_https_urls_with_a_host(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/hook", "must start with http:// or https://"),
        ("example.com/hook", "must start with http:// or https://"),
        ("", "must start with http:// or https://"),
        ("https:///hook", "must name a host"),
        ("https://:443/hook", "must name a host"),
        ("https://example.com:99999/", "malformed"),
        ("https://example.com:port/", "malformed"),
        ("https://exa mple.com/", "spaces or control characters"),
        ("https://example.com/\nhook", "spaces or control characters"),
        ("https://example.com/" + "a" * 2029, "longer than 2048"),
    ],
)
def test_validate_url_refuses_what_cannot_be_posted_to_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidSubscription, match=re.escape(reason)):
        validate_url(url)


@pytest.mark.parametrize(
    "url", ["https://alice:hunter2@example.com/", "https://alice@example.com/", "http://@x.io"]
)
def test_validate_url_refuses_credentials_without_repeating_them(url: str) -> None:
    with pytest.raises(InvalidSubscription, match="must not contain credentials") as caught:
        validate_url(url)
    assert "hunter2" not in str(caught.value)
    assert "alice" not in str(caught.value)


def test_validate_patterns_removes_duplicates_keeping_the_first_order() -> None:
    assert validate_patterns(["order.*", "invoice.paid", "order.*", "#"]) == ("order.*", "invoice.paid", "#")


def test_validate_patterns_requires_at_least_one_pattern() -> None:
    with pytest.raises(InvalidSubscription, match="at least one event pattern"):
        validate_patterns([])


def test_validate_patterns_refuses_a_bare_string_that_would_be_read_letter_by_letter() -> None:
    with pytest.raises(InvalidSubscription, match="not one string"):
        validate_patterns("order.created")


def test_validate_patterns_names_the_bad_pattern() -> None:
    with pytest.raises(InvalidSubscription, match="'ord\\*'"):
        validate_patterns(["order.created", "ord*"])


def test_validate_secret_accepts_a_generated_secret_and_refuses_other_forms() -> None:
    secret = generate_secret()

    assert validate_secret(secret) == secret
    with pytest.raises(InvalidSubscription, match="whsec_"):
        validate_secret("not-a-secret")


def test_validate_description_refuses_more_than_1000_characters() -> None:
    assert validate_description("d" * 1000) == "d" * 1000
    with pytest.raises(InvalidSubscription, match="longer than 1000"):
        validate_description("d" * 1001)


def test_new_subscription_ids_are_sub_and_20_lowercase_base32_characters() -> None:
    ids = {new_subscription_id() for _ in range(200)}

    assert len(ids) == 200
    assert all(re.fullmatch(r"sub_[a-z2-7]{20}", sub_id) for sub_id in ids)


def make_subscription(**changes: object) -> Subscription:
    base = Subscription(
        id="sub_aaaaaaaaaaaaaaaaaaaa",
        url="https://example.com/hook",
        event_patterns=("order.*",),
        secret=generate_secret(),
        previous_secret=None,
        previous_secret_expires_at=None,
        enabled=True,
        description="shop",
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]  # test helper: fields vary per test


def test_active_secrets_is_the_current_secret_alone_when_not_rotating() -> None:
    subscription = make_subscription()

    assert subscription.active_secrets(NOW) == (subscription.secret,)


def test_active_secrets_lists_current_then_previous_until_the_previous_expires() -> None:
    old = generate_secret()
    subscription = make_subscription(previous_secret=old, previous_secret_expires_at=NOW + timedelta(hours=1))

    assert subscription.active_secrets(NOW) == (subscription.secret, old)
    assert subscription.active_secrets(NOW + timedelta(minutes=59)) == (subscription.secret, old)
    assert subscription.active_secrets(NOW + timedelta(hours=1)) == (subscription.secret,)


def test_to_record_masks_both_secrets_unless_asked_to_show_them() -> None:
    old = generate_secret()
    subscription = make_subscription(previous_secret=old, previous_secret_expires_at=NOW + timedelta(hours=1))

    masked = subscription.to_record(show_secret=False, now=NOW)
    shown = subscription.to_record(show_secret=True, now=NOW)

    assert (masked["secret"], masked["previous_secret"]) == (MASKED_SECRET, MASKED_SECRET)
    assert subscription.secret not in str(masked)
    assert old not in str(masked)
    assert (shown["secret"], shown["previous_secret"]) == (subscription.secret, old)
    assert masked["rotating"] is True


def test_to_record_reports_an_expired_previous_secret_as_not_rotating() -> None:
    subscription = make_subscription(
        previous_secret=generate_secret(), previous_secret_expires_at=NOW - timedelta(seconds=1)
    )

    record = subscription.to_record(show_secret=True, now=NOW)

    assert record["rotating"] is False
    assert record["previous_secret"] is None
    assert record["event_patterns"] == ["order.*"]


def test_the_repr_of_a_subscription_leaves_its_secrets_out() -> None:
    old = generate_secret()
    subscription = make_subscription(previous_secret=old, previous_secret_expires_at=NOW)

    assert subscription.secret not in repr(subscription)
    assert old not in repr(subscription)
    assert subscription.id in repr(subscription)
