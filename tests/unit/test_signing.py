"""hookline's signatures, checked by the standardwebhooks reference library, never by hookline itself."""

from __future__ import annotations

import base64

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from workers.errors import InvalidSubscription
from workers.outbound.signing import generate_secret, secret_key, sign


def _headers(webhook_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_a_signature_verifies_with_the_reference_library(now: int) -> None:
    secret = generate_secret()
    body = b'{"type":"order.created","timestamp":"2026-11-27T08:00:00Z","data":{"id":1}}'
    signature = sign([secret_key(secret)], "evt_1", now, body)
    Webhook(secret).verify(body, _headers("evt_1", now, signature))


def test_a_signature_over_another_body_does_not_verify(now: int) -> None:
    secret = generate_secret()
    signature = sign([secret_key(secret)], "evt_1", now, b'{"a":1}')
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"a":2}', _headers("evt_1", now, signature))


def test_during_rotation_both_the_old_and_the_new_secret_verify(now: int) -> None:
    old, new = generate_secret(), generate_secret()
    body = b'{"data":{}}'
    signature = sign([secret_key(new), secret_key(old)], "evt_2", now, body)
    assert signature.count("v1,") == 2
    for secret in (old, new):
        Webhook(secret).verify(body, _headers("evt_2", now, signature))
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, _headers("evt_2", now, signature))


def test_generated_secrets_hold_32_random_bytes_behind_the_prefix() -> None:
    first, second = generate_secret(), generate_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


@pytest.mark.parametrize(
    ("secret", "complaint"),
    [
        ("abc", "must start with 'whsec_'"),
        ("whsec_!!!not-base64!!!", "base64"),
        ("whsec_" + base64.b64encode(b"x" * 23).decode(), "24 to 64 bytes"),
        ("whsec_" + base64.b64encode(b"x" * 65).decode(), "24 to 64 bytes"),
    ],
)
def test_malformed_secrets_are_refused_with_a_reason(secret: str, complaint: str) -> None:
    with pytest.raises(InvalidSubscription, match=complaint):
        secret_key(secret)


def test_secrets_of_24_and_64_bytes_are_accepted() -> None:
    for size in (24, 64):
        assert len(secret_key("whsec_" + base64.b64encode(b"k" * size).decode())) == size


@pytest.fixture
def now() -> int:
    import time  # noqa: PLC0415 - only this fixture needs the clock

    return int(time.time())
