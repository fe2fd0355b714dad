"""``hookline receive``: the development receiver checks signatures made by the reference library."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook
from support.processes import HOOKLINE, wait_until

from workers.outbound.signing import generate_secret

SECRET = generate_secret()


@pytest.fixture
def receiver_port() -> Iterator[tuple[int, subprocess.Popen[str]]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    process = subprocess.Popen(
        [HOOKLINE, "receive", "--port", str(port), "--secret", SECRET, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    wait_until(lambda: _listening(port), timeout=15, what="hookline receive to listen")
    yield port, process
    process.terminate()
    process.wait(timeout=10)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


def _post(port: int, body: bytes, signed_body: bytes) -> int:
    now = datetime.now(UTC)
    signature = Webhook(SECRET).sign("evt_1", now, signed_body.decode())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    return httpx.post(f"http://127.0.0.1:{port}/hooks", content=body, headers=headers).status_code


def test_receive_prints_each_webhook_and_checks_its_signature(
    receiver_port: tuple[int, subprocess.Popen[str]],
) -> None:
    port, process = receiver_port
    body = b'{"type":"order.created","timestamp":"2026-11-27T08:00:00Z","data":{"n":1}}'
    statuses = [_post(port, body, body), _post(port, body, body.replace(b"1", b"2"))]
    assert statuses == [200, 401]  # what does not verify is refused, as a real endpoint must
    assert process.stdout is not None
    first, second = json.loads(process.stdout.readline()), json.loads(process.stdout.readline())
    assert (first["verified"], first["payload"]["type"], first["webhook_id"]) == (
        True,
        "order.created",
        "evt_1",
    )
    assert second["verified"] is False


def test_receive_on_a_port_in_use_says_so_in_one_line(
    receiver_port: tuple[int, subprocess.Popen[str]],
) -> None:
    port, _ = receiver_port
    result = subprocess.run(
        [HOOKLINE, "receive", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=30,
        env=os.environ.copy(),
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
