"""Standard Webhooks signatures and secrets.

A secret is ``whsec_`` + base64 of 24 to 64 random bytes. A signature is
``v1,`` + base64(HMAC-SHA256(secret, f"{webhook_id}.{timestamp}.{body}")); while a
secret is being rotated the header carries one signature per active secret,
separated by spaces, so receivers holding either secret accept the webhook.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from workers.errors import InvalidSubscription

SECRET_PREFIX = "whsec_"  # noqa: S105 - the spec's public prefix, not a secret
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
DEFAULT_SECRET_BYTES = 32


def generate_secret(size: int = DEFAULT_SECRET_BYTES) -> str:
    """A new random secret in its ``whsec_`` form."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The raw HMAC key of a ``whsec_`` secret; raises InvalidSubscription if malformed."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSubscription("secret must start with 'whsec_'")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise InvalidSubscription("secret must be 'whsec_' followed by base64") from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise InvalidSubscription(
            f"secret must hold {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes (it holds {len(key)})"
        )
    return key


def sign(keys: Sequence[bytes], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,`` signature per key."""
    signed = b"%s.%d.%s" % (webhook_id.encode("utf-8"), timestamp, body)
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")
        for key in keys
    )
