"""A small webhook receiver for trying hookline out: it prints what arrives and checks signatures.

It is a development aid (``hookline receive``), not a production endpoint.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from workers.outbound.signing import secret_key, sign

# Receivers should refuse timestamps far from their clock (Standard Webhooks: 5 minutes).
TOLERANCE_SECONDS = 300
UNVERIFIED_STATUS = 401


def verify(keys: Sequence[bytes], headers: dict[str, str], body: bytes) -> bool:
    """True if any ``v1`` signature in the header matches one of ``keys``."""
    webhook_id = headers.get("webhook-id", "")
    try:
        timestamp = int(headers.get("webhook-timestamp", ""))
    except ValueError:
        return False
    if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
        return False
    offered = headers.get("webhook-signature", "").split()
    expected = {sign([key], webhook_id, timestamp, body) for key in keys}
    return any(hmac.compare_digest(candidate, wanted) for candidate in offered for wanted in expected)


def serve(
    host: str,
    port: int,
    secrets: Sequence[str],
    status: int,
    emit: Callable[[dict[str, Any]], None],
    *,
    on_listening: Callable[[], None],
) -> None:
    """Serve until interrupted; ``on_listening`` once the port is bound. OSError if it cannot be bound."""
    keys = [secret_key(secret) for secret in secrets]

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as hookline's pooled client expects

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            record: dict[str, Any] = {"path": self.path, "webhook_id": headers.get("webhook-id")}
            record["verified"] = verify(keys, headers, body) if keys else None
            try:
                record["payload"] = json.loads(body)
            except ValueError:
                record["payload"] = body.decode("utf-8", "replace")
            emit(record)
            # A real endpoint must refuse what it cannot verify: this one shows how, and lets a user
            # see hookline retry it (401 is a client error, retried unless HOOKLINE_RETRY_CLIENT_ERRORS
            # is false).
            self.send_response(status if record["verified"] is not False else UNVERIFIED_STATUS)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
            """Silenced: each webhook is printed by ``emit`` instead."""

    with ThreadingHTTPServer((host, port), Handler) as server:
        on_listening()
        server.serve_forever()
